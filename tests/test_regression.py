"""Bayesian regression with a Gaussian likelihood, and tabular data from CSV files."""
import math
import os

import numpy as np
import paddle
import pytest

from conftest import REPO
from data.csv_table import read_columns
from data import tabular
from data.tabular import load_tabular
from eval import evaluate
from model.likelihood import Gaussian, NoiseStd
from model.nets import build_net
from predict import predict
from model.regression_eval import mixture_nll, predictive_band
from train import train
from utils.checkpoint import load_weights
from utils.config import load_config
from utils.errors import ConfigError, DataError

TOY = os.path.join(REPO, "conf", "regression_toy.yaml")


def outputs(tmp_path) -> list[str]:
    return [
        f"output.checkpoint_dir={tmp_path / 'checkpoints'}",
        f"output.log_dir={tmp_path / 'logs'}",
        f"output.image_dir={tmp_path / 'image'}",
        "run_name=test",
    ]


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """conf/regression_toy.yaml trained as shipped (about 15 s on a CPU); 200 passes at eval for speed."""
    tmp_path = tmp_path_factory.mktemp("toy")
    cfg = load_config(TOY, [*outputs(tmp_path), "eval.regression_passes=200"])
    summary = train(cfg)
    return cfg, summary


def test_toy_training_gives_a_calibrated_90_percent_interval(toy):
    cfg, summary = toy
    assert summary["best_valid_nll"] < summary["history"]["valid_nll"][0]
    result = evaluate(cfg, plot=True)
    assert result["n"] == 4000 and result["passes"] == 200
    assert 0.85 <= result["coverage"] <= 0.95
    assert result["rmse"] < 2.0  # the noise std is 1.5
    assert math.isfinite(result["nll"]) and 1.0 < result["noise_std"] < 2.0
    assert os.path.isfile(result["plot"]) and result["plot"].endswith("regression.png")


def test_the_band_is_wider_outside_the_training_range(toy):
    cfg, summary = toy
    model = build_net(cfg)
    load_weights(model, summary["best_checkpoint"])
    inside = np.linspace(-3.5, 3.5, 15)[:, None]
    outside = np.array([[-6.0], [6.0]])  # the training inputs lie in [-4, 4]
    table = load_tabular(cfg)
    band = predictive_band(model, table, np.concatenate([inside, outside]), 200, 0.9, 1000, seed=0)
    width = band["high"] - band["low"]
    assert width[-2:].min() > 1.5 * width[:-2].max()


def test_gaussian_nll_is_the_normal_density_and_averages_passes_as_a_mixture():
    noise = NoiseStd(0.5, learned=False)
    likelihood = Gaussian(target_std=1.0, noise=noise)
    y = paddle.to_tensor([0.0, 1.0])
    # the net's outputs per pass: [B, 2] = (mean, noise std), as NoiseStd makes them
    one_pass = paddle.stack([noise(paddle.to_tensor([[0.0], [0.0]]))])
    expected = [0.5 * math.log(2 * math.pi * 0.25), 0.5 * math.log(2 * math.pi * 0.25) + 2.0]
    np.testing.assert_allclose(float(likelihood.nll(one_pass, y, "sum")), sum(expected), rtol=1e-5)
    means = [[0.0, 0.0], [1.0, 1.0]]
    two_passes = paddle.stack([noise(paddle.to_tensor([[m] for m in row])) for row in means])
    numpy_nll = mixture_nll(np.asarray(means), 0.5, y.numpy().astype(np.float64))
    np.testing.assert_allclose(float(likelihood.nll(two_passes, y, "mean")), numpy_nll.mean(), rtol=1e-5)


def write_csv(path, header, rows):
    path.write_text("\n".join([",".join(header)] + [",".join(str(v) for v in row) for row in rows]) + "\n")
    return str(path)


def test_csv_errors_name_the_column_and_the_line(tmp_path):
    good = write_csv(tmp_path / "good.csv", ["a", "b", "y"], [[1, 2, 3], [4, 5, 6]])
    with pytest.raises(DataError, match=r"has no column 'c'; its columns are a, b, y"):
        read_columns(good, ["a", "c"], "y", numeric_target=True)
    bad = write_csv(tmp_path / "bad.csv", ["a", "b", "y"], [[1, 2, 3], [4, "five", 6]])
    with pytest.raises(DataError, match=r"bad.csv line 3, column 'b': 'five' is not a finite number"):
        read_columns(bad, ["a", "b"], "y", numeric_target=True)
    empty_target = write_csv(tmp_path / "gap.csv", ["a", "y"], [[1, 2], [3, ""]])
    with pytest.raises(DataError, match=r"gap.csv line 3, column 'y': '' is not a finite number"):
        read_columns(empty_target, ["a"], "y", numeric_target=True)
    short = write_csv(tmp_path / "short.csv", ["a", "y"], [[1, 2], [3]])
    with pytest.raises(DataError, match=r"short.csv line 3 has 1 fields, the header has 2"):
        read_columns(short, ["a"], "y", numeric_target=True)


def test_a_test_class_unseen_in_training_names_the_line(tmp_path):
    train_csv = write_csv(tmp_path / "train.csv", ["a", "label"], [[0, "cat"], [1, "dog"], [2, "cat"]])
    test_csv = write_csv(tmp_path / "test.csv", ["a", "label"], [[0, "cat"], [1, "bird"]])
    cfg = load_config(TOY, [*outputs(tmp_path), "data.name=csv", "model.likelihood=categorical", f"data.csv.train={train_csv}",
                            f"data.csv.test={test_csv}", "data.csv.features=[a]", "data.csv.target=label"])
    with pytest.raises(DataError, match=r"test.csv line 3, column 'label': the target 'bird' is not a class of the training data"):
        load_tabular(cfg)


def csv_config(tmp_path, rows, likelihood, *extra):
    path = write_csv(tmp_path / "table.csv", ["x1", "x2", "target"], rows)
    return load_config(TOY, [
        *outputs(tmp_path), "data.name=csv", f"data.csv.train={path}", "data.csv.features=[x1, x2]", "data.csv.target=target",
        f"model.likelihood={likelihood}", "model.hidden_units=16", "train.num_epochs=3", "train.batch_size=32",
        "eval.regression_passes=20", *extra,
    ])


def test_csv_regression_trains_and_evaluates_end_to_end(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 2))
    y = 100.0 + 20.0 * x[:, 0] - 10.0 * x[:, 1] + rng.normal(0.0, 2.0, size=300)  # units far from 1: standardised inside
    cfg = csv_config(tmp_path, [[a, b, t] for (a, b), t in zip(x, y)], "gaussian", "model.noise=fixed", "model.noise_std=2.0")
    summary = train(cfg)
    assert summary["epochs"] == 3 and "valid_rmse" in summary["history"] and os.path.isfile(summary["best_checkpoint"])
    result = evaluate(cfg)
    assert result["n"] == 60 and result["noise_std"] == pytest.approx(2.0, rel=1e-5)  # test_fraction 0.2 of 300 rows
    assert result["rmse"] < np.std(y) and 0.0 <= result["coverage"] <= 1.0
    with pytest.raises(ConfigError, match="1-D inputs only"):
        evaluate(cfg, plot=True)


def test_csv_classification_trains_and_evaluates_end_to_end(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 2))
    names = np.where(x[:, 0] + x[:, 1] > 0, "yes", "no")
    cfg = csv_config(tmp_path, [[a, b, t] for (a, b), t in zip(x, names)], "categorical", "train.lr=0.02")
    assert load_tabular(cfg).classes == ["no", "yes"]
    summary = train(cfg)
    assert 0 <= summary["best_valid_acc"] <= 100
    result = evaluate(cfg)
    assert result["mc"]["n"] == 80 and result["mc"]["error"] < 30


def test_pred_on_tabular_data_says_it_takes_images(tmp_path):
    cfg = load_config(TOY, outputs(tmp_path))
    with pytest.raises(ConfigError, match="--mode pred works on image data sets only"):
        predict(cfg, ["any.png"])


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model.likelihood=poisson"], "model.likelihood must be one of categorical, gaussian"),
        (["model.noise=free"], "model.noise must be one of fixed, learned"),
        (["model.noise_std=0"], "model.noise_std must be >= "),
        (["eval.interval=1.0"], "eval.interval must be between 0.01 and 0.99"),
        (["eval.regression_passes=1"], "eval.regression_passes must be >= 2"),
        (["eval.split=valid"], "eval.split valid is for classification nets"),
        (["data.test_fraction=0"], "data.test_fraction must be between"),
        (["data.toy.x_range=[4, -4]"], "data.toy.x_range must be \\[low, high\\] with low < high"),
        (["model.likelihood=categorical"], "toy_cubic is a regression set; set model.likelihood gaussian"),
        (["model.name=lenet"], "is tabular and needs model.name 2fc"),
        (["data.name=mnist"], "model.likelihood gaussian \\(regression\\) needs data.name toy_cubic or csv"),
        (["data.name=csv"], "data.name csv needs data.csv.train"),
        (["data.csv.features=[1, 2]"], "data.csv.features must be a list of column names"),
        (["data.name=csv", "data.csv.train=t.csv", "data.csv.features=[a, y]", "data.csv.target=y"], "'y' is also in data.csv.features"),
    ],
)
def test_bad_regression_settings_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(TOY, overrides)


def test_a_deterministic_net_gets_the_band_of_its_gaussian_noise(tmp_path):
    cfg = load_config(TOY, [*outputs(tmp_path), "model.layer_type=freq", "data.toy.size=500", "model.noise_std=1.0"])
    band = predictive_band(build_net(cfg), load_tabular(cfg), np.zeros([3, 1]), 2000, 0.9, 1000, seed=0)
    np.testing.assert_allclose(band["high"] - band["low"], 2 * 1.6449 * 1.0, rtol=0.1)  # untrained: the starting noise std


@pytest.mark.parametrize("likelihood", ["categorical", "gaussian"])
def test_each_command_reads_the_table_once(tmp_path, monkeypatch, likelihood):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(200, 2))
    target = np.where(x[:, 0] > 0, "yes", "no") if likelihood == "categorical" else 3.0 * x[:, 0]
    cfg = csv_config(tmp_path, [[a, b, t] for (a, b), t in zip(x, target)], likelihood, "train.num_epochs=1")
    reads = []
    original = tabular._read_raw
    monkeypatch.setattr(tabular, "_read_raw", lambda c: reads.append(c.data.csv.train) or original(c))
    train(cfg)
    assert len(reads) == 1  # the loaders and the net's shapes share one read
    evaluate(cfg)
    assert len(reads) == 2
