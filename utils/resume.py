"""What --resume may change: the last state records the config it was trained
with, and a resumed run is compared with it before any work."""
from __future__ import annotations

from utils.config import BASE_CONFIG, load_config
from utils.errors import UserError
from utils.trees import flatten

# The net's shape and the data it reads: a resumed run cannot change them.
SHAPE_KEYS = (
    "data.name", "data.input_size", "data.csv.features", "data.csv.target",
    "model.name", "model.layer_type", "model.hidden_units", "model.likelihood", "model.noise",
)
# Free to change between the parts of one run: where and how fast it runs, how long,
# how often it saves and plots, and everything that only other modes read.
FREE_PREFIXES = ("train.num_epochs", "train.save_epochs", "train.visual_epochs", "data.num_workers", "data.root", "data.download",
                 "device", "threads", "eval.", "pred.", "ood.", "export.", "prune.")


class ResumeError(UserError):
    pass


def config_changes(trained: dict, now: dict) -> tuple[list[str], list[str]]:
    """(shape keys that differ, other training keys that differ) between the config
    a last state was trained with and the one given now, each 'key: old -> new'.
    A key the trained config lacks came into the code after that run, which
    trained as if it held conf/base.yaml's default (e.g. train.warmup_epochs 0)."""
    old, new = flatten(trained), flatten(now)
    missing = set(new) - set(old)
    if missing:
        defaults = flatten(load_config(BASE_CONFIG).to_dict())
        old.update({key: defaults[key] for key in missing if key in defaults})
    shape, other = [], []
    for key in sorted(set(old) | set(new)):
        if old.get(key) == new.get(key) or key.startswith(FREE_PREFIXES) or key == "run_name" or key.startswith("output."):
            continue
        change = f"{key}: {old.get(key)!r} -> {new.get(key)!r}"
        (shape if key in SHAPE_KEYS else other).append(change)
    return shape, other


def check_resume(trained: dict | None, now: dict, allow_changes: bool, last: str) -> list[str]:
    """Refuse a resume that changes the net's shape, or (unless allow_changes) any
    other training key; returns the accepted changes, to log."""
    if trained is None:  # a last state from before configs were recorded
        return []
    shape, other = config_changes(trained, now)
    if shape:
        raise ResumeError(f"--resume cannot change the net or its data ({'; '.join(shape)}); {last} was trained otherwise: use its config, or train afresh with --overwrite")
    if other and not allow_changes:
        raise ResumeError(f"--resume with a changed training setting ({'; '.join(other)}); add --resume-with-changes to apply it from the next epoch, or resume with the config {last} was trained with")
    return other
