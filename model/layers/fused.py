"""The C++ operators on the CPU (csrc/): the Gaussian posterior and its KL in one
pass (gaussian_posterior.cc), and the standard normal noise (standard_normal.cc).

gaussian_variance_kl(mu, rho, prior_mu, prior_sigma) returns (sigma^2, kl), with
sigma = softplus(rho) and kl = KL(N(mu, sigma^2) || N(prior_mu, prior_sigma^2))
summed over the elements: what LRT's forward needs. mixture_variance_kl(mu, rho,
eps, pi, sigma1, sigma2) returns sigma^2 and the scale-mixture prior's Monte-Carlo
KL at w = mu + sigma * eps. The *_sample_kl twins return the draw w = mu + sigma * eps
instead (what BBB's forward needs). All have gradients: one vectorized pass over
the weights forward and one backward instead of ten to thirty scalar Paddle
kernels (on threads(), this process's share of the cores). posterior_sample and
posterior_variance give the draw or sigma^2 alone, without a KL or a gradient, for
the evaluation passes. standard_normal(like, seed, offset) draws the
noise (model/layers/noise.py uses it). Each returns None, and the caller uses
Paddle's operators (or NumPy's noise) instead, when the C++ code cannot be used:
BBB_FUSED_KL=0 in the environment (or ENABLED = False here), the build failed
(no C++ compiler, ...), the tensors are not float32 on the CPU, or Paddle is not
in dynamic mode (export.py traces the model into a static program).

The operators are compiled on first use (about 30 s, with one line saying so) into
$XDG_CACHE_HOME/bbb-paddle (~/.cache/bbb-paddle), one folder per Paddle version,
Python version, CPU, environment (sys.prefix and Paddle's install path) and
source text; later processes only load them, silently (about 1 s). A lock file
makes concurrent processes (pytest, paddle.distributed.launch) build them one at
a time, and a build goes into a folder of its own that is renamed into place.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import platform
import sys
import warnings

import paddle

from utils.cores import cpu_share

ENABLED = os.environ.get("BBB_FUSED_KL", "1") != "0"
CSRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "csrc")
SOURCES = [os.path.join(CSRC, name) for name in ("gaussian_posterior.cc", "standard_normal.cc")]
NAME = "bbb_cpu_ops"

_module = None
_tried = False


def threads() -> int:
    """Threads per call: this process's share of the cores, whatever Paddle's own
    thread count (conf: threads), since the operators' threads exit after each call."""
    return cpu_share()


# -march=native: the loops vectorize for this CPU (3 to 4 times faster than SSE2);
# -mprefer-vector-width=512: on AVX-512 CPUs, 16 floats a step instead of GCC's
# default 8 (forward 2.6 -> 1.8 ms per 1.44M weights here; ignored elsewhere);
# -fno-trapping-math: the branches become selects; -fno-math-errno: sqrt is one
# instruction (else a branch to the errno-setting call stops vectorization);
# -fopenmp-simd: `omp simd` without an OpenMP runtime (the threads are our own,
# see ParallelChunks in csrc/vector_math.h).
FLAGS = ["-O3", "-march=native", "-mprefer-vector-width=512", "-fno-trapping-math", "-fno-math-errno", "-fopenmp-simd", "-pthread"]


def _cpu() -> str:
    """A short name for this CPU's instruction set, since the build uses -march=native."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith(("flags", "Features"))), "")
    except OSError:
        flags = ""
    return hashlib.sha1((platform.machine() + flags).encode()).hexdigest()[:8]


def _environment() -> str:
    """Of the interpreter's environment and Paddle's install path: two virtualenvs
    with the same Paddle get folders of their own and never rebuild each other's."""
    return hashlib.sha1(f"{sys.prefix}|{os.path.dirname(paddle.__file__)}".encode()).hexdigest()[:8]


def build_directory() -> str:
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    python = f"py{sys.version_info.major}{sys.version_info.minor}"
    return os.path.join(cache, "bbb-paddle", f"paddle-{paddle.__version__}-{python}-{_cpu()}-{_environment()}-{_source_hash()}")


def _source_hash() -> str:
    """Of every file in csrc/ and the compiler flags: Paddle rebuilds when a source's
    path changes, not its text, a header's or the flags, so a change gets a folder of its own."""
    digest = hashlib.sha1(" ".join(FLAGS).encode())
    for name in sorted(os.listdir(CSRC)):
        with open(os.path.join(CSRC, name), "rb") as f:
            digest.update(name.encode() + f.read())
    return digest.hexdigest()[:8]


def _library(directory: str) -> str:
    return os.path.join(directory, NAME, NAME + ".so")


def _compile(directory: str):
    """Build the operators into a folder beside `directory`, then rename it into
    place: a process never loads a half-written library."""
    import glob
    import shutil

    with _quietly():
        from paddle.utils.cpp_extension import load

    logging.getLogger("bbb").info("building the C++ operators once for this environment (about 30 s) into %s", directory)
    for stale in glob.glob(f"{directory}.building-*"):  # a build that was killed (the lock says none runs now)
        shutil.rmtree(stale, ignore_errors=True)
    staging = f"{directory}.building-{os.getpid()}"
    os.makedirs(staging, exist_ok=True)
    before = os.environ.get("PYTHONWARNINGS")
    os.environ["PYTHONWARNINGS"] = "ignore"  # the compiler runs in a child Python, which warns about ccache too
    try:
        with _quietly():
            module = load(name=NAME, sources=SOURCES, extra_cxx_cflags=FLAGS, extra_ldflags=["-pthread"], build_directory=staging)
    finally:
        if before is None:
            os.environ.pop("PYTHONWARNINGS", None)
        else:
            os.environ["PYTHONWARNINGS"] = before
    try:
        os.rename(staging, directory)
    except OSError:  # a folder already there: keep it
        shutil.rmtree(staging, ignore_errors=True)
    return module  # loaded already: loading the renamed copy again would register no operators


@contextlib.contextmanager
def _quietly():
    """Around Paddle's extension code: it prints its progress on stdout, which some
    commands use for their results; it warns about ccache and (2.6) its own
    deprecated calls; and it logs 'using custom operator only' on every load, twice
    (its handler and the root's)."""
    loggers = [logging.getLogger(name) for name in ("utils.cpp_extension", "paddle.utils.cpp_extension")]
    levels = [lg.level for lg in loggers]
    with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for lg in loggers:
            lg.setLevel(logging.WARNING)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)


def _build():
    import fcntl  # POSIX only; elsewhere the ImportError means the Paddle path

    with _quietly():
        from paddle.utils.cpp_extension.extension_utils import _import_module_from_library

    directory = build_directory()
    os.makedirs(os.path.dirname(directory), exist_ok=True)
    if not os.path.isfile(_library(directory)):
        with open(directory + ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time; released when the file closes
            if not os.path.isfile(_library(directory)):
                return _compile(directory)
    with _quietly():
        return _import_module_from_library(NAME, os.path.join(directory, NAME), False)


def _op():
    """The compiled operator, built or loaded on the first call; None if that failed."""
    global _module, _tried
    if not _tried:
        _tried = True
        try:
            _module = _build()
        except Exception as error:  # whatever went wrong, the Paddle path still works
            logging.getLogger("bbb").info("C++ operators unavailable (%s: %s); using Paddle operators and NumPy noise", type(error).__name__, error)
    return _module


def _usable(*tensors: paddle.Tensor):
    """The compiled operator if it may run on these tensors, else None (see the module docstring)."""
    if not ENABLED or not paddle.in_dynamic_mode():
        return None
    if any(t.dtype != paddle.float32 or not t.place.is_cpu_place() for t in tensors):
        return None
    return _op()


def _output_and_kl(outputs: list[paddle.Tensor]) -> tuple[paddle.Tensor, paddle.Tensor]:
    """The training operators' (output, kl); their other outputs are what the
    backward pass reads (csrc/gaussian_posterior.cc), kept alive by the graph."""
    return outputs[0], outputs[1]


def gaussian_variance_kl(mu: paddle.Tensor, rho: paddle.Tensor, prior_mu: float, prior_sigma: float):
    """(softplus(rho)^2, closed-form KL summed over the elements) from one fused pass, or None."""
    op = _usable(mu, rho)
    return None if op is None else _output_and_kl(op.gaussian_variance_kl(mu, rho, float(prior_mu), float(prior_sigma), threads()))


def gaussian_sample_kl(mu: paddle.Tensor, rho: paddle.Tensor, eps: paddle.Tensor, prior_mu: float, prior_sigma: float):
    """(the draw mu + softplus(rho) * eps, closed-form KL) from one fused pass, or None."""
    op = _usable(mu, rho, eps)
    return None if op is None else _output_and_kl(op.gaussian_sample_kl(mu, rho, eps, float(prior_mu), float(prior_sigma), threads()))


def mixture_variance_kl(mu: paddle.Tensor, rho: paddle.Tensor, eps: paddle.Tensor, pi: float, sigma1: float, sigma2: float):
    """(sigma^2 = softplus(rho)^2, log q(w) - log p(w) summed over the elements at
    w = mu + sigma * eps) for the scale-mixture prior, from one fused pass; or None
    (also for pi 0 or 1)."""
    op = _usable(mu, rho, eps) if 0.0 < pi < 1.0 else None
    return None if op is None else _output_and_kl(op.mixture_variance_kl(mu, rho, eps, float(pi), float(sigma1), float(sigma2), threads()))


def mixture_sample_kl(mu: paddle.Tensor, rho: paddle.Tensor, eps: paddle.Tensor, pi: float, sigma1: float, sigma2: float):
    """(the draw w = mu + softplus(rho) * eps, log q(w) - log p(w) summed) from one fused pass, or None."""
    op = _usable(mu, rho, eps) if 0.0 < pi < 1.0 else None
    return None if op is None else _output_and_kl(op.mixture_sample_kl(mu, rho, eps, float(pi), float(sigma1), float(sigma2), threads()))


def _no_gradient(*tensors: paddle.Tensor) -> bool:
    return not paddle.is_grad_enabled() or all(t.stop_gradient for t in tensors)


def posterior_sample(mu: paddle.Tensor, rho: paddle.Tensor, eps: paddle.Tensor):
    """mu + softplus(rho) * eps from one pass, with no KL and no gradient (evaluation
    passes); None where it cannot run or a gradient is wanted."""
    op = _usable(mu, rho, eps) if _no_gradient(mu, rho) else None
    return None if op is None else op.bbb_posterior_sample(mu, rho, eps, threads())


def posterior_variance(mu: paddle.Tensor, rho: paddle.Tensor):
    """softplus(rho)^2 from one pass, with no KL and no gradient; None as posterior_sample."""
    op = _usable(mu, rho) if _no_gradient(mu, rho) else None
    return None if op is None else op.bbb_posterior_variance(mu, rho, threads())


def standard_normal(like: paddle.Tensor, seed: int, offset: int):
    """N(0, 1) float32 draws of like's shape from the counter-based generator
    (csrc/standard_normal.cc): a pure function of (seed, offset, size); the next
    draw's offset is offset + blocks(size). None where the operator cannot run."""
    op = _usable(like)
    return None if op is None else op.bbb_standard_normal(like.detach(), int(seed), int(offset), threads())


def blocks(size: int) -> int:
    """Counter values one draw of `size` normals uses: four normals per Philox block."""
    return (size + 3) // 4


def normal_sample(mean: paddle.Tensor, var: paddle.Tensor, var_eps: float, seed: int, offset: int):
    """mean + sqrt(var + var_eps) * eps in one pass, eps = standard_normal(mean, seed,
    offset); differentiable in mean and var. None where the operator cannot run."""
    op = _usable(mean, var)
    return None if op is None else op.bbb_normal_sample(mean, var, int(seed), int(offset), float(var_eps), threads())[0]
