"""Learning curves as PNG files."""
from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402


def _plot(path: str, epochs, series: dict, ylabel: str) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, values in series.items():
        ax.plot(epochs, values, marker="o" if len(epochs) < 20 else None, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def plot_history(history: dict, image_dir: str) -> list[str]:
    """acc.png, error.png and loss.png of train and valid, per epoch."""
    os.makedirs(image_dir, exist_ok=True)
    epochs = history["epoch"]
    paths = [os.path.join(image_dir, name) for name in ("acc.png", "error.png", "loss.png")]
    _plot(paths[0], epochs, {"train": history["train_acc"], "valid": history["valid_acc"]}, "accuracy (%)")
    _plot(paths[1], epochs, {"train": [100 - a for a in history["train_acc"]], "valid": [100 - a for a in history["valid_acc"]]}, "error (%)")
    _plot(paths[2], epochs, {"train": history["train_loss"], "valid": history["valid_loss"]}, "negative ELBO per sample")
    return paths
