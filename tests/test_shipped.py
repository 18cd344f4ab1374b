"""Every shipped checkpoint, scored on all 10,000 MNIST test images, gives the
error that checkpoints/shipped.yaml and the README state."""
import os

import pytest
import yaml

from conftest import REPO
from eval import evaluate
from utils.config import load_config

with open(os.path.join(REPO, "checkpoints", "shipped.yaml")) as f:
    SHIPPED = yaml.safe_load(f)


@pytest.mark.parametrize("entry", SHIPPED, ids=[e["config"] for e in SHIPPED])
def test_shipped_checkpoint_gives_the_stated_error(entry):
    cfg = load_config(os.path.join(REPO, entry["config"]))
    weights = os.path.join(REPO, entry["weights"])  # the shipped file, even where a run of the config exists
    assert os.path.getsize(weights) < 25 * 2**20
    results = evaluate(cfg, weights=weights)
    assert results["mean"]["n"] == 10000
    assert results["mean"]["error"] == pytest.approx(entry["mean_error"], abs=1e-9)
    if entry["mc_error"] is None:  # a deterministic net has no Monte-Carlo estimate
        assert "mc" not in results
    else:
        assert results["mc"]["error"] == pytest.approx(entry["mc_error"], abs=0.05)


@pytest.mark.parametrize("entry", SHIPPED, ids=[e["config"] for e in SHIPPED])
def test_readme_states_the_shipped_figures(entry):
    readme = open(os.path.join(REPO, "README.md")).read()
    rows = [line for line in readme.splitlines() if entry["config"] in line and line.startswith("|")]
    assert rows, f"README has no results row for {entry['config']}"
    figures = [f"{entry['mean_error']:.2f} %"] + ([f"{entry['mc_error']:.2f} %"] if entry["mc_error"] is not None else [])
    assert any(all(figure in row for figure in figures) for row in rows)
