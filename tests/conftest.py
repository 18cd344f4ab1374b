"""Shared test set-up: the repo on sys.path, and small configs on the shipped fixtures."""
import os
import sys
import warnings

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(REPO, "tests", "fixtures")
sys.path.insert(0, REPO)
import utils.boot  # noqa: E402,F401  before Paddle loads, as in main.py
warnings.filterwarnings("ignore", category=UserWarning)

from utils.config import load_config  # noqa: E402


def small_overrides(tmp_path, *extra: str) -> list[str]:
    """-o overrides for a seconds-long run on the MNIST fixture, writing under tmp_path."""
    return [
        f"data.root={os.path.join(FIXTURES, 'mnist')}",
        "data.valid_size=100",
        "model.hidden_units=32",
        "train.num_epochs=1",
        "train.batch_size=100",
        "train.valid_ens=2",
        "eval.batch_size=100",
        "pred.samples=4",
        f"output.checkpoint_dir={tmp_path / 'checkpoints'}",
        f"output.log_dir={tmp_path / 'logs'}",
        f"output.image_dir={tmp_path / 'image'}",
        "run_name=test",
        *extra,
    ]


@pytest.fixture
def small_cfg(tmp_path):
    """Build a small config; extra overrides as arguments."""

    def make(*extra: str, config: str = "conf/bayescnn_base.yaml"):
        return load_config(os.path.join(REPO, config), small_overrides(tmp_path, *extra))

    return make
