"""Tabular data sets: rows of numeric features with a target, for the 2fc net.

`toy_cubic` is the synthetic regression set of data/toy.py; `csv` reads the
columns named in data.csv from one file (split by data.test_fraction) or from a
train and a test file. The target is a number to regress when the likelihood is
gaussian and a class (any text; classes sorted) when it is categorical.

Features, and regression targets, are standardised with the statistics of the
training part (training plus validation rows, never the test rows), so one
learning rate and prior fit any units; results are reported in the target's own
units through `target_mean` and `target_std`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data.csv_table import read_columns
from data.in_memory import ArrayDataset
from data.splits import split_indices
from data.toy import toy_cubic
from utils.errors import ConfigError, DataError

TABULAR_SETS = ("toy_cubic", "csv")


def is_tabular(name: str) -> bool:
    return name in TABULAR_SETS


def require_image_data(data_cfg, mode: str) -> None:
    """A clear error for the modes that work on images only."""
    if is_tabular(data_cfg.name):
        raise ConfigError(f"--mode {mode} works on image data sets only, not data.name {data_cfg.name}; use --mode eval for tabular data")


@dataclass
class TabularData:
    """Standardised arrays: train_x [N, F] float32 (training plus validation rows),
    train_y [N], test_x, test_y; targets float32 (regression) or int64 class indices."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    feature_mean: np.ndarray
    feature_std: np.ndarray
    target_mean: float = 0.0   # regression: y = target_mean + target_std * standardised y
    target_std: float = 1.0
    classes: list | None = None  # classification: the target value of each class index

    @property
    def in_features(self) -> int:
        return self.train_x.shape[1]

    @property
    def num_outputs(self) -> int:
        """Logits for classes; one predicted mean for regression."""
        return len(self.classes) if self.classes is not None else 1

    def features_to_net(self, x: np.ndarray) -> np.ndarray:
        """Raw features [N, F] -> the net's standardised input."""
        return ((x - self.feature_mean) / self.feature_std).astype(np.float32)


def _test_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    n_test = int(round(fraction * n))
    if not 0 < n_test < n:
        raise DataError(f"data.test_fraction {fraction} of {n} rows leaves no training or no test rows; use a fraction in (0, 1)")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def _sort_classes(values: list[str]) -> list[str]:
    """Distinct target values, in numeric order when all are numbers ('2' before '10')."""
    distinct = set(values)
    try:
        return sorted(distinct, key=float)
    except ValueError:
        return sorted(distinct)


def _class_indices(values: list[str], classes: list[str], path: str, column: str, lines: list[int]) -> np.ndarray:
    index = {c: i for i, c in enumerate(classes)}
    for value, line in zip(values, lines):
        if value not in index:
            what = "is empty" if not value else f"'{value}' is not a class of the training data ({', '.join(classes[:10])})"
            raise DataError(f"{path} line {line}, column '{column}': the target {what}; fix or drop that row")
    return np.asarray([index[v] for v in values], dtype=np.int64)


def _read_raw(cfg) -> tuple[np.ndarray, list, np.ndarray, list, dict]:
    """Unstandardised (train_x, train_y, test_x, test_y) and, for CSV classification, how to name classes."""
    data_cfg, regression = cfg.data, cfg.model.likelihood == "gaussian"
    if data_cfg.name == "toy_cubic":
        toy = data_cfg.toy
        x, y = toy_cubic(toy.size, toy.noise_std, tuple(toy.x_range), cfg.seed)
        train, test = _test_split(len(x), data_cfg.test_fraction, cfg.seed)
        return x[train], list(y[train]), x[test], list(y[test]), {}
    spec = data_cfg.csv
    x, y, lines = read_columns(spec.train, spec.features, spec.target, numeric_target=regression)
    if spec.test:
        test_x, test_y, test_lines = read_columns(spec.test, spec.features, spec.target, numeric_target=regression)
        source = {"train": (spec.train, lines), "test": (spec.test, test_lines)}
        return x, y, test_x, test_y, source
    train, test = _test_split(len(x), data_cfg.test_fraction, cfg.seed)
    pick = lambda values, idx: [values[i] for i in idx]  # noqa: E731
    source = {"train": (spec.train, pick(lines, train)), "test": (spec.train, pick(lines, test))}
    return x[train], pick(y, train), x[test], pick(y, test), source


def _spread(values: np.ndarray) -> np.ndarray:
    """Standard deviation, with 1 where a column is constant (nothing to scale)."""
    std = np.std(values, axis=0)
    return np.where(std > 0, std, 1.0)


def load_tabular(cfg) -> TabularData:
    """The configured tabular set, split and standardised (see the module docstring)."""
    train_x, train_y, test_x, test_y, source = _read_raw(cfg)
    mean, std = train_x.mean(axis=0), _spread(train_x)
    standardise = lambda x: ((x - mean) / std).astype(np.float32)  # noqa: E731
    if cfg.model.likelihood == "gaussian":
        y = np.asarray(train_y, dtype=np.float64)
        y_mean, y_std = float(y.mean()), float(_spread(y))
        to_net = lambda v: ((np.asarray(v, dtype=np.float64) - y_mean) / y_std).astype(np.float32)  # noqa: E731
        return TabularData(standardise(train_x), to_net(train_y), standardise(test_x), to_net(test_y), mean, std, y_mean, y_std)
    classes = _sort_classes(train_y)
    (train_path, train_lines), (test_path, test_lines) = source["train"], source["test"]
    target = cfg.data.csv.target
    return TabularData(
        standardise(train_x), _class_indices(train_y, classes, train_path, target, train_lines),
        standardise(test_x), _class_indices(test_y, classes, test_path, target, test_lines),
        mean, std, classes=classes,
    )


def load_table(cfg) -> TabularData | None:
    """The configured tabular set (load_tabular), or None for an image set: what a
    command reads once and hands to the loaders and to the net's builder (its shapes)."""
    return load_tabular(cfg) if is_tabular(cfg.data.name) else None


def tabular_train_valid_sets(cfg, data: TabularData, rank: int = 0, world_size: int = 1) -> tuple[ArrayDataset, ArrayDataset]:
    """Training and validation rows: data.valid_size of the training part, seeded like the
    image sets; process `rank` of `world_size` gets every world_size-th validation row."""
    train_idx, valid_idx = split_indices(len(data.train_x), cfg.data.valid_size, cfg.seed)
    valid_idx = valid_idx[rank::world_size]
    return ArrayDataset(data.train_x[train_idx], data.train_y[train_idx]), ArrayDataset(data.train_x[valid_idx], data.train_y[valid_idx])


def tabular_test_set(data: TabularData) -> ArrayDataset:
    return ArrayDataset(data.test_x, data.test_y)
