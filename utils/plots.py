"""Learning curves, reliability diagrams, per-image predictions, OOD score
histograms and regression bands as PNG files, each written to a temporary file and renamed into place."""
from __future__ import annotations

import os

import numpy as np

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402


def _plot(path: str, epochs, series: dict, ylabel: str) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, values in series.items():
        if np.isnan(np.asarray(values, dtype=float)).all():
            continue  # a run without validation (data.valid_size 0): no curve, no empty legend entry
        ax.plot(epochs, values, marker="o" if len(epochs) < 20 else None, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    _save(fig, path)


def plot_curves(path: str, curves: dict, ylabel: str, ylim: tuple | None = None) -> str:
    """Several runs on one plot: curves {label: (epochs, values)}, each with its own epochs."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, (epochs, values) in curves.items():
        ax.plot(epochs, values, label=label, linewidth=1)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def _save(fig, path: str) -> str:
    """Write the figure atomically: a reader never sees a half-written PNG."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def _loss_label(history: dict) -> str:
    """What loss.png shows: NLL + c KL / N with the KL weight c the run trained with
    (train and valid alike; c = 1 is the negative ELBO per sample)."""
    weights = sorted(set(history.get("kl_weight", [1.0])))
    c = f"{weights[0]:.3g}" if len(weights) == 1 else f"{weights[0]:.3g}..{weights[-1]:.3g}"
    return "negative ELBO per sample" if c == "1" else f"NLL + {c} KL / N per sample"


def plot_history(history: dict, image_dir: str) -> list[str]:
    """acc.png, error.png, nll.png and loss.png of train and valid, per epoch (rmse.png,
    nll.png and loss.png for a regression run). Both curves of a plot are the same quantity."""
    os.makedirs(image_dir, exist_ok=True)
    epochs = history["epoch"]
    if "train_rmse" in history:
        names = ("rmse.png", "nll.png", "loss.png")
        paths = [os.path.join(image_dir, name) for name in names]
        _plot(paths[0], epochs, {"train": history["train_rmse"], "valid": history["valid_rmse"]}, "RMSE (target units)")
    else:
        names = ("acc.png", "error.png", "nll.png", "loss.png")
        paths = [os.path.join(image_dir, name) for name in names]
        _plot(paths[0], epochs, {"train": history["train_acc"], "valid": history["valid_acc"]}, "accuracy (%)")
        _plot(paths[1], epochs, {"train": [100 - a for a in history["train_acc"]], "valid": [100 - a for a in history["valid_acc"]]}, "error (%)")
    _plot(paths[-2], epochs, {"train": history["train_nll"], "valid": history["valid_nll"]}, "NLL per sample")
    _plot(paths[-1], epochs, {"train": history["train_loss"], "valid": history["valid_loss"]}, _loss_label(history))
    return paths


def plot_reliability(path: str, results: dict, bins: int) -> str:
    """One reliability diagram per entry of results ({label: eval result with
    'reliability', 'ece'}): accuracy per confidence bin against the diagonal."""
    fig, axes = plt.subplots(1, len(results), figsize=(4.5 * len(results), 4.5), squeeze=False)
    edges = np.linspace(0.0, 1.0, bins + 1)
    width = edges[1] - edges[0]
    for ax, (label, result) in zip(axes[0], results.items()):
        table = result["reliability"]
        accuracy = np.array([np.nan if a is None else a for a in table["accuracy"]])
        confidence = np.array([np.nan if c is None else c for c in table["confidence"]])
        filled = ~np.isnan(accuracy)
        ax.bar(edges[:-1][filled], accuracy[filled], width=width, align="edge", edgecolor="black", label="accuracy")
        # the gap between each bin's mean confidence and its accuracy: what the ECE sums
        ax.bar(edges[:-1][filled], (confidence - accuracy)[filled], bottom=accuracy[filled], width=width, align="edge",
               color="red", alpha=0.3, edgecolor="red", label="gap to confidence")
        ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence (max probability)")
        ax.set_ylabel("accuracy")
        ax.set_title(f"{label}: ECE {result['ece']:.2f}%")
        ax.legend(loc="upper left", fontsize=8)
    return _save(fig, path)


def plot_prediction(path: str, image: np.ndarray, probs: np.ndarray, title: str) -> str:
    """The input image [C, H, W], the mean class probabilities over the passes
    probs [T, C] with their spread (std and min-max), and how often each class won."""
    fig, (ax_img, ax_prob, ax_votes) = plt.subplots(1, 3, figsize=(13, 3.8), gridspec_kw={"width_ratios": [1, 1.6, 1.6]})
    shown = image[0] if image.shape[0] == 1 else np.transpose(image, (1, 2, 0))
    if shown.ndim == 3:  # colour: stretch to [0, 1] for display
        shown = (shown - shown.min()) / max(float(shown.max() - shown.min()), 1e-12)
    ax_img.imshow(shown, cmap="gray" if shown.ndim == 2 else None)
    ax_img.set_axis_off()
    ax_img.set_title("input")
    classes = np.arange(probs.shape[1])
    mean = probs.mean(axis=0)
    ax_prob.bar(classes, mean, yerr=probs.std(axis=0), capsize=3, color="tab:blue", label="mean, +- std")
    ax_prob.vlines(classes, probs.min(axis=0), probs.max(axis=0), color="black", linewidth=1, label="min to max")
    ax_prob.set_xticks(classes)
    ax_prob.set_ylim(0, 1.05)
    ax_prob.set_xlabel("class")
    ax_prob.set_ylabel("probability")
    ax_prob.set_title(f"class probabilities over {probs.shape[0]} passes")
    ax_prob.legend(fontsize=8)
    votes = np.bincount(probs.argmax(axis=1), minlength=probs.shape[1])
    ax_votes.bar(classes, votes, color="tab:orange")
    ax_votes.set_xticks(classes)
    ax_votes.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts of passes
    ax_votes.set_xlabel("class")
    ax_votes.set_ylabel("passes")
    ax_votes.set_title("class predicted by each pass")
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def plot_ood_histograms(path: str, in_scores: dict, out_scores: dict, in_name: str, out_name: str, title: str) -> str:
    """Overlaid histograms, one panel per score ({name: values}), of the
    in-distribution and the out-of-distribution inputs."""
    names = list(in_scores)
    cols = min(4, len(names))
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False)
    for ax, name in zip(axes.ravel(), names):
        both = np.concatenate([in_scores[name], out_scores[name]])
        low, high = float(both.min()), float(both.max())
        bins = np.linspace(low, high if high > low else low + 1e-6, 41)
        ax.hist(in_scores[name], bins=bins, alpha=0.55, density=True, label=in_name)
        ax.hist(out_scores[name], bins=bins, alpha=0.55, density=True, label=out_name)
        ax.set_title(name.replace("_", " "), fontsize=10)
        ax.set_yscale("log")  # most in-distribution scores pile up at one end
        ax.legend(fontsize=8)
    for ax in axes.ravel()[len(names):]:
        ax.set_axis_off()
    fig.suptitle(title, fontsize=11)
    return _save(fig, path)


def plot_regression(path: str, data: tuple, grid_x: np.ndarray, band: dict, train_range: tuple, interval: float, title: str) -> str:
    """Held-out points data = (x, y), the predictive mean and central interval
    band = {mean, low, high} along grid_x, and the training inputs' range shaded."""
    fig, ax = plt.subplots(figsize=(8, 5))
    ax.axvspan(*train_range, color="0.93", zorder=0, label="training range")
    ax.scatter(*data, s=3, alpha=0.25, color="tab:gray", label="held-out data")
    tail = 100 * (1 - interval) / 2
    ax.fill_between(grid_x, band["low"], band["high"], color="tab:blue", alpha=0.3, label=f"{tail:g}-{100 - tail:g} % predictive band")
    ax.plot(grid_x, band["mean"], color="tab:blue", linewidth=2, label="predictive mean")
    ax.set_xlim(grid_x[0], grid_x[-1])
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, path)


def plot_snr(path: str, db: np.ndarray, cuts: dict) -> str:
    """Blundell's Figure 4: the density of the weights' signal-to-noise ratio in dB,
    with where each pruned fraction cuts, beside its CDF."""
    fig, (density, cdf) = plt.subplots(1, 2, figsize=(10, 4))
    # weights that never get a gradient (a border pixel's) sit far below the rest: drawn at the left edge
    low = min(float(np.quantile(db, 0.1)) - 15.0, min(cuts.values(), default=0.0) - 5.0)
    below = int((db < low).sum())
    db = np.clip(db, low, None)
    density.hist(db, bins=200, density=True, color="tab:blue", alpha=0.8)
    if below:
        density.set_title(f"{below:,} weights below {low:.0f} dB drawn at the left edge", fontsize=9)
    density.set_xlabel("signal-to-noise ratio |mu| / sigma (dB)")
    density.set_ylabel("density")
    ordered = np.sort(db)
    cdf.plot(ordered, np.arange(1, ordered.size + 1) / ordered.size, color="tab:blue")
    cdf.set_xlabel("signal-to-noise ratio |mu| / sigma (dB)")
    cdf.set_ylabel("CDF")
    for i, (fraction, cut) in enumerate(sorted(cuts.items())):
        color = f"C{i + 1}"
        for ax in (density, cdf):
            ax.axvline(cut, color=color, linestyle="--", label=f"{100 * fraction:g} % removed ({cut:.1f} dB)")
    for ax in (density, cdf):
        ax.grid(alpha=0.3)
    cdf.legend(fontsize=8)
    return _save(fig, path)


def plot_weight_histogram(path: str, bayesian: np.ndarray, deterministic: np.ndarray | None) -> str:
    """Blundell's Figure 3: the histogram of weight values, the Bayesian net's
    posterior means against its deterministic twin's weights when given."""
    fig, ax = plt.subplots(figsize=(6, 4))
    span = np.quantile(np.abs(bayesian), 0.999) if deterministic is None else max(np.quantile(np.abs(bayesian), 0.999), np.quantile(np.abs(deterministic), 0.999))
    bins = np.linspace(-span, span, 201)
    ax.hist(bayesian, bins=bins, density=True, histtype="step", linewidth=1.5, label="Bayes by Backprop (posterior means)")
    if deterministic is not None:
        ax.hist(deterministic, bins=bins, density=True, histtype="step", linewidth=1.5, label="deterministic twin")
    ax.set_xlabel("weight value")
    ax.set_ylabel("density")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)
