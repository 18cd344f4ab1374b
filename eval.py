"""Score a trained net on the whole test set: per-sample error and NLL, with a
Monte-Carlo ensemble and with the posterior mean weights, and how well its
confidence is calibrated (ECE, Brier score, reliability diagram). With
eval.split=valid, the same on the validation split instead, for choosing
settings without looking at the test set.

    python main.py --config conf/base.yaml --mode eval [--weights PATH] [--plot] [--json] [-o eval.split=valid]
"""
from __future__ import annotations

import os

import paddle

from data import build_test_loader, build_train_valid_loaders, load_table
from model.nets import load_trained_net
from model.scoring import score_with_calibration
from model.regression_eval import evaluate_regression
from utils.runtime import prepare


def evaluate(cfg, weights: str | None = None, plot: bool = False) -> dict:
    """Load a checkpoint (weights, else eval.weights, else the run's best) and score
    the test set (or, with eval.split=valid, the validation split); with plot, draw
    the reliability diagram (<image_dir>/reliability.png). Regression nets are
    scored by regression.evaluate_regression."""
    if cfg.model.likelihood == "gaussian":
        return evaluate_regression(cfg, weights, plot)  # the test rows (utils/config.py refuses eval.split valid)
    split = cfg.eval.split
    _, logger = prepare(cfg)
    table = load_table(cfg)  # a tabular set, read once (None for images)
    model, path = load_trained_net(cfg, weights, table)
    loader = build_test_loader(cfg, table) if split == "test" else build_train_valid_loaders(cfg, table=table)[1]
    results = {"weights": path, "model": cfg.model.name, "layer_type": cfg.model.layer_type, "dataset": cfg.data.name, "split": split}
    bins = cfg.eval.calibration_bins
    samples = cfg.eval.samples or cfg.train.valid_ens
    if model.is_bayesian:
        model.set_sampling(True)
        results["mc"] = dict(score_with_calibration(model, loader, samples, bins), samples=samples)
        model.set_sampling(False)
        with paddle.no_grad():
            results["kl"] = float(model.kl())  # KL(q || p) of the posterior, in nats
    results["mean"] = score_with_calibration(model, loader, 1, bins)
    for kind in ("mc", "mean"):
        if kind in results:
            r = results[kind]
            logger.info(
                "%s %-4s: error %.2f%% (%d of %d), NLL %.4f, ECE %.2f%%, Brier %.4f",
                split, kind, r["error"], round(r["error"] * r["n"] / 100), r["n"], r["nll"], r["ece"], r["brier"],
            )
    if plot:
        from utils.plots import plot_reliability  # matplotlib only when asked for

        labels = {"mc": f"Monte-Carlo ({samples} samples)", "mean": "mean weights" if model.is_bayesian else "deterministic"}
        path = os.path.join(cfg.output.image_dir, "reliability.png")
        results["plot"] = plot_reliability(path, {labels[k]: results[k] for k in ("mc", "mean") if k in results}, bins)
        logger.info("reliability diagram: %s", path)
    return results
