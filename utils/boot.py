"""What every entry point (main.py, bench/, the tests) imports first, before Paddle loads:
MKL's fast path on this CPU (utils/blas.py), and no warning about ccache, which
`import paddle` prints although only a build of C++ operators could use it."""
import warnings

from utils import blas  # noqa: F401  sets MKL_DEBUG_CPU_TYPE where it helps

warnings.filterwarnings("ignore", message="No ccache found")
