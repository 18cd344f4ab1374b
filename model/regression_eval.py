"""Score a regression net (Gaussian likelihood, data/tabular.py) on the held-out
rows, in the target's own units:

- RMSE of the predictive mean (the mean over the passes of the predicted means);
- NLL of the predictive distribution, the mixture of the passes' Gaussians
  N(mean_t, sigma^2) with equal weights;
- coverage of its central eval.interval (0.9: 5 to 95 %), the share of held-out
  targets inside it. The interval's ends are quantiles of predictive samples,
  one per pass: mean_t + sigma * eps_t.

With --plot (1-D inputs only), <image_dir>/regression.png shows the data, the
predictive mean and that band over an x range reaching half the training
range's width beyond each side, where only the weights' uncertainty widens it.

    python main.py --config conf/regression_toy.yaml --mode eval [--plot] [--json]
"""
from __future__ import annotations

import math
import os

import numpy as np
import paddle

from data.tabular import TabularData, load_tabular
from model.likelihood import likelihood_of
from model.nets import load_trained_net
from utils.errors import ConfigError
from utils.runtime import prepare

PLOT_MARGIN = 0.5   # the plot reaches this share of the training range's width beyond each side
PLOT_POINTS = 400   # x values along the plotted curve


@paddle.no_grad()
def pass_means(model, x: np.ndarray, passes: int, batch_size: int) -> np.ndarray:
    """Predicted means of every pass over standardised inputs x [N, F]: [passes, N], standardised.
    A deterministic net predicts the same every pass: computed once and repeated, so that
    the noise samples of predictive_interval still trace its Gaussian."""
    model.eval()
    distinct = passes if model.is_bayesian else 1
    chunks = []
    for start in range(0, len(x), batch_size):
        batch = paddle.to_tensor(x[start:start + batch_size])
        chunks.append(paddle.stack([model.logits(batch)[:, 0] for _ in range(distinct)]).numpy())  # column 0: the means
    return np.repeat(np.concatenate(chunks, axis=1), passes // distinct, axis=0)


def predictive_interval(means: np.ndarray, noise_std: float, interval: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Ends of the central `interval` of the predictive mixture, from one sample per pass: means [T, N] -> ([N], [N])."""
    samples = means + noise_std * rng.standard_normal(means.shape)
    tail = (1.0 - interval) / 2
    low, high = np.quantile(samples, [tail, 1.0 - tail], axis=0)
    return low, high


def mixture_nll(means: np.ndarray, noise_std: float, y: np.ndarray) -> np.ndarray:
    """-log of the equal-weight mixture of N(means[t], noise_std^2) at y, per point: [T, N], [N] -> [N]."""
    z = (y[None, :] - means) / noise_std
    log_p = -0.5 * z * z - math.log(noise_std) - 0.5 * math.log(2 * math.pi)
    top = log_p.max(axis=0)
    return -(top + np.log(np.exp(log_p - top).mean(axis=0)))


def predictive_band(model, table: TabularData, x: np.ndarray, passes: int, interval: float, batch_size: int, seed: int) -> dict:
    """Predictive mean and interval ends at raw inputs x [N, F], in target units."""
    means = pass_means(model, table.features_to_net(x), passes, batch_size)
    noise = likelihood_of(model).noise_std()
    low, high = predictive_interval(means, noise, interval, np.random.default_rng(seed))
    to_target = lambda v: table.target_mean + table.target_std * v  # noqa: E731
    return {"mean": to_target(means.mean(axis=0)), "low": to_target(low), "high": to_target(high)}


def training_range(table: TabularData) -> tuple[float, float]:
    """Lowest and highest raw training input of a 1-D set."""
    raw = table.train_x[:, 0] * table.feature_std[0] + table.feature_mean[0]
    return float(raw.min()), float(raw.max())


def evaluate_regression(cfg, weights: str | None = None, plot: bool = False) -> dict:
    """Load a checkpoint (weights, else eval.weights, else the run's best) and score the held-out rows."""
    _, logger = prepare(cfg)
    table = load_tabular(cfg)
    if plot and table.in_features != 1:
        raise ConfigError(f"--plot draws regression.png for 1-D inputs only, and data.csv.features names {table.in_features} columns; leave out --plot")
    model, path = load_trained_net(cfg, weights, table)
    model.set_sampling(True)
    passes, interval = cfg.eval.regression_passes, cfg.eval.interval

    means = pass_means(model, table.test_x, passes, cfg.eval.batch_size)
    noise = likelihood_of(model).noise_std()
    low, high = predictive_interval(means, noise, interval, np.random.default_rng(cfg.seed))
    y = table.test_y.astype(np.float64)
    scale = table.target_std
    results = {
        "weights": path, "model": cfg.model.name, "layer_type": cfg.model.layer_type, "dataset": cfg.data.name,
        "task": "regression", "n": int(len(y)), "passes": passes, "interval": interval,
        "rmse": float(np.sqrt(np.mean((means.mean(axis=0) - y) ** 2)) * scale),
        "nll": float(mixture_nll(means, noise, y).mean() + math.log(scale)),  # density in target units
        "coverage": float(np.mean((low <= y) & (y <= high))),
        "interval_width": float(np.mean(high - low) * scale),
        "noise_std": noise * scale,
    }
    logger.info(
        "test: RMSE %.4f, NLL %.4f, %.0f%% interval covers %.1f%% (mean width %.3f), noise std %.4f; %d points, %d passes",
        results["rmse"], results["nll"], 100 * interval, 100 * results["coverage"], results["interval_width"], results["noise_std"], results["n"], passes,
    )
    if plot:
        from utils.plots import plot_regression  # matplotlib only when asked for

        low_x, high_x = training_range(table)
        margin = PLOT_MARGIN * (high_x - low_x)
        grid = np.linspace(low_x - margin, high_x + margin, PLOT_POINTS)[:, None]
        band = predictive_band(model, table, grid, passes, interval, cfg.eval.batch_size, cfg.seed)
        test_x = table.test_x[:, 0] * table.feature_std[0] + table.feature_mean[0]
        test_y = table.target_mean + scale * y
        target = os.path.join(cfg.output.image_dir, "regression.png")
        title = f"{cfg.run_name}: {cfg.model.name}/{cfg.model.layer_type}, {passes} passes, coverage {100 * results['coverage']:.1f}%"
        results["plot"] = plot_regression(target, (test_x, test_y), grid[:, 0], band, (low_x, high_x), interval, title)
        logger.info("regression plot: %s", target)
    return results


def format_regression(result: dict) -> str:
    """The printed line of --mode eval for a regression net."""
    return (
        f"test RMSE {result['rmse']:.4f}, NLL {result['nll']:.4f}, {100 * result['interval']:.0f}% interval coverage "
        f"{100 * result['coverage']:.1f}% ({result['n']} points, {result['passes']} passes, noise std {result['noise_std']:.4f})"
    )
