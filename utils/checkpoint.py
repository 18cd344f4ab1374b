"""Checkpoints written atomically (temp file + rename), so a crash mid-write
never replaces the last good file, and loaded with a clear error when they do
not fit the net."""
from __future__ import annotations

import os

import paddle

from utils.errors import CheckpointError


def atomic_save(obj, path: str) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        paddle.save(obj, tmp)
        os.replace(tmp, path)
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
    """Load a state dict into `model`, refusing any missing, unexpected or mis-shaped tensor."""
    state = load_file(path)
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]  # a last-state file
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds no weights")
    expected = model.state_dict()
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
