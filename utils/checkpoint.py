"""Checkpoints written atomically (temp file + rename), so a crash mid-write
never replaces the last good file, and loaded with a clear error when they do
not fit the net."""
from __future__ import annotations

import os

import numpy as np
import paddle

from utils.errors import CheckpointError


def atomic_save(obj, path: str) -> None:
    """Write beside the target, then rename: the previous file stays whole until the
    new one is. A failed write (a full disk) is one CheckpointError line."""
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        paddle.save(obj, tmp)
        os.replace(tmp, path)
    except OSError as e:
        kept = f"; the previous {path} is intact" if os.path.exists(path) else ""
        raise CheckpointError(f"could not write {path} ({e.strerror or e}){kept}; free space or set output.checkpoint_dir elsewhere, then --resume") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_file(path: str):
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint not found: {path} (train first, or pass --weights / eval.weights)")
    try:
        return paddle.load(path)
    except Exception as e:
        raise CheckpointError(f"cannot read checkpoint {path} ({type(e).__name__}); it is not a Paddle checkpoint or is damaged") from None


def load_weights(model: paddle.nn.Layer, path: str, what: str = "the net") -> None:
    """Load a state dict into `model`, refusing any missing, unexpected, mis-shaped or non-finite tensor."""
    state = load_file(path)
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]  # a last-state file
    set_weights(model, state, path, what)


# The reference code's (and the earlier Paddle port's) names of a Bayesian layer's parameters.
REFERENCE_NAMES = {"W_mu": "weight_mu", "W_rho": "weight_rho"}


def from_reference_names(state: dict, expected: dict) -> dict:
    """A state dict in the reference naming (fc1.W_mu, fc1.W_rho, fc1.bias_mu, ...) in
    this project's (fc1.weight_mu, ...). A port that kept PyTorch's [out, in] layout
    of a linear weight is recognised by a non-square weight whose shape is the
    transpose of the net's, and then every 2-D weight is transposed."""
    renamed = {}
    for key, value in state.items():
        layer, _, name = key.rpartition(".")
        renamed[f"{layer}.{REFERENCE_NAMES[name]}" if name in REFERENCE_NAMES else key] = value
    if renamed.keys() == state.keys():
        return state
    flipped = [k for k, v in renamed.items() if k in expected and len(v.shape) == 2 and v.shape[0] != v.shape[1]
               and list(v.shape)[::-1] == list(expected[k].shape)]
    if flipped:
        renamed = {k: (v.T if k.endswith(("weight_mu", "weight_rho")) and len(v.shape) == 2 else v) for k, v in renamed.items()}
    return renamed


def set_weights(model: paddle.nn.Layer, state, path: str, what: str = "the net") -> None:
    """load_weights() for a state dict already read from `path`."""
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds no weights")
    expected = model.state_dict()
    state = from_reference_names(state, expected)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [k for k in expected if k in state and list(state[k].shape) != list(expected[k].shape)]
    if missing or unexpected or shapes:
        detail = "; ".join(
            part
            for part in (
                f"missing {', '.join(missing[:3])}" if missing else "",
                f"unexpected {', '.join(unexpected[:3])}" if unexpected else "",
                f"shape of {shapes[0]} is {list(state[shapes[0]].shape)}, net wants {list(expected[shapes[0]].shape)}" if shapes else "",
            )
            if part
        )
        raise CheckpointError(f"checkpoint {path} does not match {what} ({detail}); use the config it was trained with")
    broken = [k for k, v in state.items() if not np.isfinite(np.asarray(v.numpy() if hasattr(v, "numpy") else v)).all()]
    if broken:
        raise CheckpointError(f"checkpoint {path} holds non-finite weights (NaN or inf in {', '.join(broken[:3])}): it comes from a diverged training; use an earlier checkpoint")
    model.set_state_dict(state)


def _rename_keys(state: dict, renames: dict) -> dict:
    """Replace a parameter-name prefix in every key (longest name first)."""
    names = sorted(renames, key=len, reverse=True)
    out = {}
    for key, value in state.items():
        match = next((n for n in names if key == n or key.startswith(n + "_")), None)
        out[renames[match] + key[len(match):] if match else key] = value
    return out


def optimizer_state(optimizer, model: paddle.nn.Layer) -> dict:
    """The optimizer's state keyed by structured parameter names (fc1.weight_mu...),
    not Paddle's global names (linear_3.w_0), which change with construction order."""
    return _rename_keys(optimizer.state_dict(), {p.name: n for n, p in model.named_parameters()})


def load_optimizer_state(optimizer, model: paddle.nn.Layer, state: dict) -> None:
    optimizer.set_state_dict(_rename_keys(state, {n: p.name for n, p in model.named_parameters()}))
