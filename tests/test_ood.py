"""Out-of-distribution detection: the sets it reads, and --mode ood end to end on the fixtures."""
import gzip
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import FIXTURES, REPO, small_overrides
from data.ood_sets import load_ood_images, read_idx_images
from utils.config import load_config
from utils.errors import ConfigError, DataError

IMAGES = os.path.join(FIXTURES, "images")


def write_idx_images(path, images: np.ndarray) -> None:
    """uint8 [N, H, W] -> a gzip'd IDX image file, the MNIST test-file format."""
    n, h, w = images.shape
    header = np.array([2051, n, h, w], dtype=">u4").tobytes()
    with gzip.open(path, "wb") as f:
        f.write(header + images.astype(np.uint8).tobytes())


def ood_overrides(tmp_path, *extra):
    return small_overrides(
        tmp_path,
        f"ood.notmnist_root={os.path.join(FIXTURES, 'notmnist')}",
        f"ood.fashion_root={os.path.join(FIXTURES, 'fashion-mnist')}",
        "ood.samples=3",
        "ood.batch_size=128",
        *extra,
    )


def run_cli(*args, overrides):
    cmd = [sys.executable, os.path.join(REPO, "main.py"), "--config", os.path.join(REPO, "conf", "bayescnn_base.yaml"), *args]
    for item in overrides:
        cmd += ["-o", item]
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=300)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A small BBB net and its deterministic twin, saved untrained: the OOD mode's
    mechanics do not depend on how good the weights are."""
    from model.nets import build_net
    from utils.checkpoint import atomic_save
    from utils.runtime import RunPaths

    tmp_path = tmp_path_factory.mktemp("ood")
    cfg = load_config(os.path.join(REPO, "conf", "bayescnn_base.yaml"), ood_overrides(tmp_path))
    atomic_save(build_net(cfg).state_dict(), RunPaths(cfg).best)
    twin = str(tmp_path / "twin_freq.pdparams")
    atomic_save(build_net(load_config(os.path.join(REPO, "conf", "bayescnn_base.yaml"), ood_overrides(tmp_path, "model.layer_type=freq"))).state_dict(), twin)
    return tmp_path, twin


def test_ood_mode_rates_every_score_of_every_variant_against_every_set(checkpoints):
    tmp_path, twin = checkpoints
    done = run_cli("--mode", "ood", "--json", "--image", IMAGES, overrides=ood_overrides(tmp_path, f"ood.freq_weights={twin}"))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["mode"] == "ood" and result["n_in"] == 200
    assert list(result["variants"]) == ["bbb", "lrt", "mean", "freq"]
    assert [v["samples"] for v in result["variants"].values()] == [3, 3, 1, 1]
    assert {name: s["n"] for name, s in result["sets"].items()} == {"notmnist": 200, "fashion_mnist": 200, "images": len(os.listdir(IMAGES))}
    for name, entry in result["sets"].items():
        for score, row in entry["scores"].items():
            for variant in ("bbb", "lrt"):
                assert 0 <= row[variant]["auroc"] <= 1 and 0 < row[variant]["aupr"] <= 1
            deterministic_only = score in ("mutual_information", "epistemic_softmax", "epistemic_normalized")
            assert (row["mean"] is None) == deterministic_only and (row["freq"] is None) == deterministic_only
        assert entry["best_bayesian"]["variant"] in ("bbb", "lrt")
        assert entry["deterministic_max_probability_auroc"] == entry["scores"]["max_probability"]["freq"]["auroc"]
        assert entry["plot"] == str(tmp_path / "image" / f"ood_{name}.png") and os.path.getsize(entry["plot"]) > 0
    assert result["notes"] == []


def test_ood_mode_prints_a_table_and_says_which_rows_it_left_out(checkpoints):
    tmp_path, _ = checkpoints
    done = run_cli("--mode", "ood", overrides=ood_overrides(tmp_path, "ood.sets=[notmnist]"))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "mnist test (200 images) vs notmnist (200 images): AUROC / AUPR" in out
    header = next(line for line in out.splitlines() if line.startswith("score"))
    assert header.split() == ["score", "BBB", "LRT", "mean", "weights"]
    assert "mutual information" in out and "best Bayesian score" in out
    assert "note: no deterministic twin: set ood.freq_weights" in out


def test_a_missing_ood_folder_is_a_one_line_error_naming_the_expected_file(checkpoints, tmp_path):
    run_dir, _ = checkpoints
    done = run_cli("--mode", "ood", overrides=ood_overrides(run_dir, f"ood.notmnist_root={tmp_path / 'nowhere'}"))
    assert done.returncode == 2
    [line] = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert "ood set notmnist" in line and f"{tmp_path / 'nowhere' / 't10k-images-idx3-ubyte.gz'}" in line
    assert "set ood.notmnist_root" in line


def test_a_null_root_looks_in_paddles_cache(monkeypatch, tmp_path):
    from ood import load_sets

    monkeypatch.setenv("HOME", str(tmp_path))
    cfg = load_config(os.path.join(REPO, "conf", "bayescnn_base.yaml"), small_overrides(tmp_path, "ood.sets=[fashion_mnist]"))
    with pytest.raises(DataError, match=r"\.cache/paddle/dataset/fashion-mnist/t10k-images-idx3-ubyte\.gz"):
        load_sets(cfg, [])


def test_an_ood_set_of_another_image_size_is_resized(small_cfg, tmp_path):
    cfg = small_cfg()
    images = np.random.default_rng(0).integers(0, 256, size=(7, 32, 32))  # 7: no multiple of 100 needed
    write_idx_images(tmp_path / "t10k-images-idx3-ubyte.gz", images)
    assert read_idx_images(str(tmp_path / "t10k-images-idx3-ubyte.gz")).shape == (7, 32, 32)
    inputs = load_ood_images(str(tmp_path), cfg.data)
    assert inputs.shape == (7, 1, 28, 28) and inputs.dtype == np.float32
    assert 0 <= inputs.min() and inputs.max() <= 255 / 126 + 1e-6  # the test transform: pixel / 126


def test_an_ood_set_in_mnist_format_matches_the_test_transform(small_cfg):
    cfg = small_cfg()
    inputs = load_ood_images(os.path.join(FIXTURES, "notmnist"), cfg.data)
    raw = read_idx_images(os.path.join(FIXTURES, "notmnist", "t10k-images-idx3-ubyte.gz"))
    np.testing.assert_allclose(inputs[:, 0], raw / 126.0, rtol=1e-6)


def test_a_folder_of_images_skips_files_that_are_not_images(small_cfg, tmp_path):
    cfg = small_cfg()
    Image.open(os.path.join(IMAGES, "mnist_0_7_rgb64.png")).save(tmp_path / "big_colour.png")  # 64x64 RGB
    (tmp_path / "notes.png").write_text("not an image")
    inputs = load_ood_images(str(tmp_path), cfg.data)
    assert inputs.shape == (1, 1, 28, 28)


def test_a_folder_with_no_images_is_an_error(small_cfg, tmp_path):
    cfg = small_cfg()
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(DataError, match="no readable images in"):
        load_ood_images(str(tmp_path), cfg.data)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(DataError, match="no readable images in"):
        load_ood_images(str(tmp_path), cfg.data)


def test_a_file_that_is_not_in_idx_format_is_an_error(small_cfg, tmp_path):
    with gzip.open(tmp_path / "t10k-images-idx3-ubyte.gz", "wb") as f:
        f.write(b"hello, this is no IDX file")
    with pytest.raises(DataError, match="not an MNIST-format image file"):
        load_ood_images(str(tmp_path), small_cfg().data)


@pytest.mark.parametrize(
    "override, message",
    [
        ("ood.sets=[cifar10]", "ood.sets must be a list of names from notmnist, fashion_mnist"),
        ("ood.samples=0", "ood.samples must be >= 1"),
        ("pred.reject_threshold=high", "pred.reject_threshold must be a number or null"),
        ("pred.reject_score=max_probability", "pred.reject_score must be one of entropy"),
        ("ood.freq_weights=3", "ood.freq_weights must be a path or null"),
    ],
)
def test_bad_ood_and_pred_settings_name_the_key(small_cfg, override, message):
    with pytest.raises(ConfigError, match=message):
        small_cfg(override)
