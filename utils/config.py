"""YAML -> validated Config object.

conf/base.yaml defines every key and its default; other files name it with
`_base_` and override a few keys; `-o a.b=value` overrides come last. The type of
each default fixes the type a key accepts, and CHOICES / RANGES below add the
allowed values, so a typo fails here, before any work starts.
"""
from __future__ import annotations

import copy
import difflib
import os
import re
from typing import Any, Iterable

import yaml

from data.photos import INVERT_CHOICES
from model.optimizers import OPTIMIZERS, SCHEDULES
from model.layers.base import INITIALIZERS
from model.layers.priors import PRIORS
from model.mc import TRAIN_AVERAGES
from model.nets import LAYER_TYPES, NETS
from model.pruning import RANKINGS
from utils.errors import ConfigError
from utils.legacy_config import is_legacy, translate
from utils.trees import flatten, set_dotted
from utils.uncertainty import CONFIDENCE_SCORES, SCORE_NAMES

BETA_TYPES = ("Blundell", "Standard", "Soenderby")

CHOICES = {
    "device": ("auto", "cpu", "gpu"),
    "data.name": ("mnist", "fashion_mnist", "cifar10", "cifar100", "toy_cubic", "csv"),
    "model.name": NETS,  # the registries themselves: a net added to one is allowed at once
    "model.layer_type": LAYER_TYPES,
    "model.activation": ("relu", "softplus"),
    "model.prior.type": PRIORS,
    "model.likelihood": ("categorical", "gaussian"),
    "model.noise": ("fixed", "learned"),
    "pred.reject_score": tuple(n for n in SCORE_NAMES if n not in CONFIDENCE_SCORES),  # "above T" = less sure
    "export.infer_form": ("mc", "mean"),
    "eval.split": ("test", "valid"),
    "train.optimizer": OPTIMIZERS,
    "train.lr_schedule": SCHEDULES,
    "train.ens_objective": tuple(TRAIN_AVERAGES),
    "model.posterior.init": tuple(INITIALIZERS),
    "prune.ranking": RANKINGS,
    "pred.invert": INVERT_CHOICES,
}

# List keys whose entries must come from a fixed set.
LIST_CHOICES = {
    "ood.sets": ("notmnist", "fashion_mnist"),
}

# (low, high, what): inclusive bounds; None = unbounded.
RANGES = {
    "threads": (0, None),
    "data.input_size": (8, None),
    "data.valid_size": (0, None),
    "data.num_workers": (0, None),
    "data.test_fraction": (0.01, 0.99),
    "data.toy.size": (10, None),
    "data.toy.noise_std": (0.0, None),
    "model.hidden_units": (1, None),
    "model.noise_std": (1e-6, None),
    "model.prior.sigma": (1e-12, None),
    "model.prior.pi": (0.0, 1.0),
    "model.prior.sigma1": (1e-12, None),
    "model.prior.sigma2": (1e-12, None),
    "train.num_epochs": (1, None),
    "train.batch_size": (1, None),
    "train.lr": (1e-12, None),
    "train.lr_decay": (1e-12, 1.0),
    "train.momentum": (0.0, 0.999999),
    "train.lr_factor": (1e-12, None),
    "train.warmup_epochs": (0, None),
    "train.weight_decay": (0.0, None),
    "train.rho_lr_scale": (1e-12, None),
    "train.train_ens": (1, None),
    "train.valid_ens": (1, None),
    "train.save_epochs": (1, None),
    "train.visual_epochs": (1, None),
    "eval.batch_size": (1, None),
    "eval.samples": (1, None),
    "pred.samples": (1, None),
    "pred.topk": (1, None),
    "pred.reject_threshold": (0.0, None),
    "eval.calibration_bins": (1, None),
    "eval.regression_passes": (2, None),
    "eval.interval": (0.01, 0.99),
    "ood.samples": (1, None),
    "prune.samples": (0, None),
    "ood.batch_size": (1, None),
    "export.samples": (1, None),
    "export.batch_size": (1, None),
}

# Keys whose default is null but that take a string when set.
OPTIONAL_STR = ("data.root", "eval.weights", "eval.data_root", "ood.notmnist_root", "ood.fashion_root", "ood.freq_weights", "export.dir", "prune.freq_weights", "data.csv.train", "data.csv.test", "data.csv.target")

# Keys that hold a file or folder. A relative path in a config file means the same
# file wherever the command runs: it is taken relative to the repository (where
# conf/ is); one given with -o is relative to the current folder, as in a shell.
PATH_KEYS = ("data.root", "data.csv.train", "data.csv.test", "eval.weights", "eval.data_root", "ood.notmnist_root", "ood.fashion_root",
             "ood.freq_weights", "export.dir", "prune.freq_weights", "output.checkpoint_dir", "output.log_dir", "output.image_dir")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASE_CONFIG = os.path.join(REPO, "conf", "base.yaml")  # every key and its default

# List keys whose entries are names (strings).
LIST_OF_STR = ("data.csv.features",)

# Keys whose default is null but that take a number when set.
OPTIONAL_NUMBER = ("pred.reject_threshold", "eval.samples")

BASE_KEY = "_base_"


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads 1e-3 as a float (YAML 1.1 wants 1.0e-3)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _yaml_load(text_or_stream: Any) -> Any:
    return yaml.load(text_or_stream, Loader=_Loader)


class Config(dict):
    """A nested dict read as attributes: cfg.train.lr."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def get_path(self, dotted: str) -> Any:
        node: Any = self
        for part in dotted.split("."):
            node = node[part]
        return node

    def to_dict(self) -> dict:
        return {k: v.to_dict() if isinstance(v, Config) else v for k, v in self.items()}


def _to_config(tree: dict) -> Config:
    return Config({k: _to_config(v) if isinstance(v, dict) else v for k, v in tree.items()})


def _read_yaml(path: str) -> dict:
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path} (pass an existing file, e.g. conf/base.yaml)")
    try:
        with open(path, encoding="utf-8") as f:
            tree = _yaml_load(f)
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path} is not UTF-8 text (byte {e.start}); save the config as UTF-8") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"malformed YAML in {path}{where}: {getattr(e, 'problem', e)} (fix the file's syntax)") from None
    if tree is None:
        raise ConfigError(f"{path} is empty; a config names its base (`_base_: base.yaml`) and the keys it changes, or use conf/base.yaml itself")
    if not isinstance(tree, dict):
        raise ConfigError(f"{path} must hold a mapping of keys, not {type(tree).__name__}")
    return tree


def _load_with_bases(path: str, seen: tuple = (), notes: list | None = None) -> dict:
    path = os.path.abspath(path)
    if path in seen:
        raise ConfigError(f"{path} inherits from itself through {BASE_KEY}")
    tree = _read_yaml(path)
    if is_legacy(tree):
        tree, line = translate(tree, path)
        if notes is not None:
            notes.append(line)
    base_name = tree.pop(BASE_KEY, None)
    if base_name is None:
        return tree
    base = _load_with_bases(os.path.join(os.path.dirname(path), base_name), seen + (path,), notes)
    return _merge(base, tree, path)


def translated_tree(path: str) -> dict | None:
    """The earlier port's config at `path` in this project's keys (None if it is not one), for --print-config."""
    tree = _read_yaml(os.path.abspath(path))
    return translate(tree, os.path.abspath(path))[0] if is_legacy(tree) else None


def _merge(base: dict, update: dict, source: str, prefix: str = "", every_key: Iterable[str] | None = None) -> dict:
    every_key = list(flatten(base)) if every_key is None else every_key  # for suggestions from other sections
    merged = copy.deepcopy(base)
    for key, value in update.items():
        dotted = prefix + key
        if key not in merged:
            _unknown_key(dotted, flatten(base, prefix), source, every_key)
        if isinstance(merged[key], dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{dotted} in {source} must be a section of keys ({', '.join(merged[key])})")
            merged[key] = _merge(merged[key], value, source, dotted + ".", every_key)
        else:
            merged[key] = value
    return merged


def _unknown_key(dotted: str, known: Iterable[str], source: str, every_key: Iterable[str] = ()) -> None:
    """Suggest the same key name in another section first (model.beta_type -> train.beta_type,
    lr -> train.lr), then close spellings in this section, then close names anywhere."""
    leaf = dotted.rsplit(".", 1)[-1]
    every_key = list(every_key)
    close = [k for k in every_key if k.rsplit(".", 1)[-1] == leaf]
    close = close or difflib.get_close_matches(dotted, list(known), n=3, cutoff=0.75)
    if not close:
        leaves = {k.rsplit(".", 1)[-1]: k for k in every_key}
        close = [leaves[name] for name in difflib.get_close_matches(leaf, list(leaves), n=3, cutoff=0.8)]
    hint = f"; did you mean {' or '.join(close[:3])}?" if close else "; see conf/base.yaml for the keys"
    raise ConfigError(f"unknown config key '{dotted}' in {source}{hint}")


def parse_overrides(overrides: Iterable[str]) -> dict:
    """['train.lr=0.01', ...] -> nested dict, values parsed as YAML."""
    tree: dict = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' must look like section.key=value")
        dotted, raw = item.split("=", 1)
        try:
            value = _yaml_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            raise ConfigError(f"override {dotted}: cannot parse value '{raw}' as YAML") from None
        node = tree
        parts = dotted.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {dotted} conflicts with another override")
        node[parts[-1]] = value
    return tree


def _check_value(dotted: str, value: Any, default: Any) -> None:
    if dotted == "train.beta_type":
        if isinstance(value, bool) or not (value in BETA_TYPES or isinstance(value, (int, float))):
            raise ConfigError(f"{dotted} must be one of {', '.join(BETA_TYPES)} or a number, got {value!r}")
        if isinstance(value, (int, float)) and value < 0:
            raise ConfigError(f"{dotted} must be >= 0, got {value}")
        return
    if dotted == "data.valid_size":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{dotted} must be a count or a fraction below 1, got {value!r}")
        if isinstance(value, float) and not 0 <= value < 1:
            raise ConfigError(f"{dotted} must be a count of images (an integer such as 10000, or 0 for none) or a fraction strictly between 0 and 1, got {value}")
    elif dotted in OPTIONAL_STR:
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{dotted} must be a path or null, got {value!r}")
        return
    elif dotted in LIST_OF_STR:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{dotted} must be a list of column names, got {value!r}")
        return
    elif dotted in LIST_CHOICES:
        allowed = LIST_CHOICES[dotted]
        if not isinstance(value, list) or any(v not in allowed for v in value):
            raise ConfigError(f"{dotted} must be a list of names from {', '.join(allowed)}, got {value!r}")
        return
    elif dotted in OPTIONAL_NUMBER:
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{dotted} must be a number or null, got {value!r}")
    elif isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{dotted} must be true or false, got {value!r}")
    elif isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{dotted} must be an integer, got {value!r}")
    elif isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{dotted} must be a number, got {value!r}")
    elif isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{dotted} must be a string, got {value!r}")
    elif isinstance(default, list):
        if not isinstance(value, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            raise ConfigError(f"{dotted} must be a list of numbers, got {value!r}")
    if dotted in CHOICES and value not in CHOICES[dotted]:
        raise ConfigError(f"{dotted} must be one of {', '.join(CHOICES[dotted])}, got {value!r}")
    if dotted in RANGES:
        low, high = RANGES[dotted]
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f">= {low}" if high is None else f"between {low} and {high}"
            raise ConfigError(f"{dotted} must be {bounds}, got {value}")


def _check_consistency(cfg: Config) -> None:
    channels = len(cfg.data.mean)
    if len(cfg.data.std) != channels:
        raise ConfigError("data.mean and data.std must have one entry per channel and the same length")
    if any(s <= 0 for s in cfg.data.std):
        raise ConfigError("data.std entries must be > 0")
    posterior = cfg.model.posterior
    for key in ("mu_init", "rho_init"):
        pair = posterior[key]
        if posterior.init == "normal" and (len(pair) != 2 or pair[1] < 0):
            raise ConfigError(f"model.posterior.{key} must be [mean, std] with std >= 0 for init normal, got {pair}")
        if posterior.init == "uniform" and (len(pair) != 2 or pair[1] < pair[0]):
            raise ConfigError(f"model.posterior.{key} must be [low, high] with low <= high for init uniform, got {pair}")
    if any(not 0 <= f < 1 for f in cfg.prune.fractions):
        raise ConfigError(f"prune.fractions must be fractions in [0, 1) of the weights to remove, got {list(cfg.prune.fractions)}")
    milestones = cfg.train.lr_milestones
    if any(m != int(m) or m < 1 for m in milestones) or list(milestones) != sorted(set(milestones)):
        raise ConfigError(f"train.lr_milestones must be increasing whole epochs >= 1, got {list(milestones)}")
    prior = cfg.model.prior
    if prior.type == "mixture" and not prior.sigma2 < prior.sigma1:
        raise ConfigError("model.prior.sigma2 must be smaller than model.prior.sigma1 for the scale mixture")
    if cfg.eval.split == "valid" and cfg.data.valid_size == 0:
        raise ConfigError("eval.split valid needs a validation split, but data.valid_size is 0 (nothing held out); score the test set, or train and score with -o data.valid_size=10000")
    _check_tabular(cfg)


def _check_tabular(cfg: Config) -> None:
    """Tabular sets feed 2fc only; a Gaussian likelihood needs a real target (toy_cubic or csv)."""
    data, model = cfg.data, cfg.model
    tabular = data.name in ("toy_cubic", "csv")
    if tabular and model.name != "2fc":
        raise ConfigError(f"data.name {data.name} is tabular and needs model.name 2fc, got {model.name}")
    if model.likelihood == "gaussian" and not tabular:
        raise ConfigError(f"model.likelihood gaussian (regression) needs data.name toy_cubic or csv, got {data.name}")
    if model.likelihood == "gaussian" and cfg.train.train_ens > 1 and cfg.train.ens_objective != "predictive":
        raise ConfigError("train.ens_objective elbo averages class log-probabilities; for model.likelihood gaussian set train.ens_objective predictive (or train.train_ens 1)")
    if model.likelihood == "gaussian" and cfg.eval.split != "test":
        raise ConfigError("eval.split valid is for classification nets; regression eval scores the held-out test rows (eval.split test)")
    if data.name == "toy_cubic":
        if model.likelihood != "gaussian":
            raise ConfigError("data.name toy_cubic is a regression set; set model.likelihood gaussian")
        x_range = data.toy.x_range
        if len(x_range) != 2 or not x_range[0] < x_range[1]:
            raise ConfigError(f"data.toy.x_range must be [low, high] with low < high, got {x_range}")
    if data.name == "csv":
        spec = data.csv
        if spec.train is None or spec.target is None or not spec.features:
            raise ConfigError("data.name csv needs data.csv.train (a file), data.csv.features (column names) and data.csv.target (a column name)")
        if spec.target in spec.features:
            raise ConfigError(f"data.csv.target '{spec.target}' is also in data.csv.features; a column is either an input or the target")


def load_config(path: str, overrides: Iterable[str] = (), base_path: str | None = None, notes: list | None = None) -> Config:
    """Read `path` (following `_base_`), apply `-o` overrides, validate, return a Config.

    Every key must exist in conf/base.yaml (or `base_path`), which holds all defaults.
    A config of the earlier Paddle port is translated first (utils/legacy_config.py);
    the line saying so is appended to `notes`.
    """
    if base_path is None:
        base_path = BASE_CONFIG
    schema = _read_yaml(base_path)
    schema.pop(BASE_KEY, None)
    tree = _merge(schema, _load_with_bases(path, notes=notes), path)
    for dotted, value in flatten(tree).items():
        if dotted in PATH_KEYS and isinstance(value, str) and not os.path.isabs(os.path.expanduser(value)):
            set_dotted(tree, dotted, os.path.normpath(os.path.join(REPO, value)))
    tree = _merge(tree, parse_overrides(overrides), "the -o overrides")
    defaults = flatten(schema)
    for dotted, value in flatten(tree).items():
        _check_value(dotted, value, defaults[dotted])
    cfg = _to_config(tree)
    _check_consistency(cfg)
    return cfg
