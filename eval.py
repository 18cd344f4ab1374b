"""Score a trained net on the whole test set: per-sample error and NLL, with a
Monte-Carlo ensemble and with the posterior mean weights, and how well its
confidence is calibrated (ECE, Brier score, reliability diagram). With
eval.split=valid, the same on the validation split instead, for choosing
settings without looking at the test set.

    python main.py --config conf/base.yaml --mode eval [--weights PATH] [--plot] [--json] [-o eval.split=valid]
"""
from __future__ import annotations

import math
import os

import numpy as np
import paddle

from data import build_test_loader, build_train_valid_loaders
from model.likelihood import likelihood_of
from model.nets import load_trained_net
from regression import evaluate_regression
from utils.metrics import brier_score, expected_calibration_error, reliability_bins
from utils.runtime import seed_everything, set_device, setup_logging


def calibration(probs: np.ndarray, labels: np.ndarray, bins: int) -> dict:
    """ECE in percent (like the error), Brier score, and the reliability bins
    (null where a bin is empty) of predictive probabilities [N, C]."""
    confidence, hits = probs.max(axis=-1), probs.argmax(axis=-1) == labels
    table = reliability_bins(confidence, hits, bins)

    def listed(values):
        return [None if math.isnan(v) else float(v) for v in values]

    return {
        "ece": 100.0 * expected_calibration_error(confidence, hits, bins),
        "brier": brier_score(probs, labels),
        "reliability": {"confidence": listed(table["confidence"]), "accuracy": listed(table["accuracy"]), "count": [int(c) for c in table["count"]]},
    }


@paddle.no_grad()
def score(model, loader, samples: int, num_train: int | None = None, calibration_bins: int | None = None, group=None) -> dict:
    """Counted per sample over the whole loader: the mean NLL, the likelihood's figure
    (accuracy and error for classes, RMSE for regression: model/likelihood.py), the
    KL, (given num_train) the negative ELBO per training sample, and (given
    calibration_bins, classes only) the calibration figures of calibration(). Given a
    utils.distributed.ProcessGroup whose processes each hold a shard of the
    data, the counts are summed over all of them first."""
    model.eval()
    likelihood = likelihood_of(model)
    n = batches = 0
    nll_sum = fit = kl_sum = 0.0
    kept_probs, kept_labels = [], []
    for inputs, targets in loader:
        outputs, kl = likelihood.mc_outputs(model, inputs, samples)
        nll_sum += float(likelihood.nll(outputs, targets, reduction="sum"))
        fit += likelihood.fit_sum(outputs, targets)
        n += targets.shape[0]
        kl_sum += float(kl)
        batches += 1
        if calibration_bins:  # validation during training skips this
            kept_probs.append(paddle.exp(outputs).numpy())
            kept_labels.append(targets.numpy())
    if group is not None:
        n, fit, nll_sum, kl_sum, batches = group.sum([n, fit, nll_sum, kl_sum, batches])
        n = int(n)
    result = {"n": n, likelihood.metric: likelihood.metric_value(fit, n), "nll": nll_sum / n, "kl": kl_sum / max(batches, 1)}
    if not likelihood.is_regression:
        result["error"] = 100.0 * (n - fit) / n  # fit: the number of right answers
    if num_train:
        result["loss"] = result["nll"] + result["kl"] / num_train
    if calibration_bins:
        result.update(calibration(np.concatenate(kept_probs), np.concatenate(kept_labels), calibration_bins))
    return result


def evaluate(cfg, weights: str | None = None, plot: bool = False) -> dict:
    """Load a checkpoint (weights, else eval.weights, else the run's best) and score
    the test set (or, with eval.split=valid, the validation split); with plot, draw
    the reliability diagram (<image_dir>/reliability.png). Regression nets are
    scored by regression.evaluate_regression."""
    if cfg.model.likelihood == "gaussian":
        return evaluate_regression(cfg, weights, plot)  # the test rows (utils/config.py refuses eval.split valid)
    split = cfg.eval.split
    set_device(cfg.device, cfg.threads)
    seed_everything(cfg.seed)
    logger = setup_logging()
    model, path = load_trained_net(cfg, weights)
    loader = build_test_loader(cfg) if split == "test" else build_train_valid_loaders(cfg)[1]
    results = {"weights": path, "model": cfg.model.name, "layer_type": cfg.model.layer_type, "dataset": cfg.data.name, "split": split}
    bins = cfg.eval.calibration_bins
    if model.is_bayesian:
        model.set_sampling(True)
        results["mc"] = dict(score(model, loader, cfg.train.valid_ens, calibration_bins=bins), samples=cfg.train.valid_ens)
        model.set_sampling(False)
    results["mean"] = score(model, loader, 1, calibration_bins=bins)
    for kind in ("mc", "mean"):
        if kind in results:
            r = results[kind]
            logger.info(
                "%s %-4s: error %.2f%% (%d of %d), NLL %.4f, ECE %.2f%%, Brier %.4f",
                split, kind, r["error"], round(r["error"] * r["n"] / 100), r["n"], r["nll"], r["ece"], r["brier"],
            )
    if plot:
        from utils.plots import plot_reliability  # matplotlib only when asked for

        labels = {"mc": f"Monte-Carlo ({cfg.train.valid_ens} samples)", "mean": "mean weights" if model.is_bayesian else "deterministic"}
        path = os.path.join(cfg.output.image_dir, "reliability.png")
        results["plot"] = plot_reliability(path, {labels[k]: results[k] for k in ("mc", "mean") if k in results}, bins)
        logger.info("reliability diagram: %s", path)
    return results
