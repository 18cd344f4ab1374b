"""Scoring a net on a whole loader: per-sample error and NLL (`score`), and how well
its confidence is calibrated besides (ECE, Brier score, reliability bins:
`score_with_calibration`). Training's validation, eval and prune use them; the
passes compute no KL (ModuleWrapper.logits): the net's KL is `model.kl()`."""
from __future__ import annotations

import math

import numpy as np
import paddle
from tqdm import tqdm

from model.likelihood import likelihood_of
from utils.errors import UserError
from utils.metrics import brier_score, expected_calibration_error, reliability_bins


class NonFiniteScore(UserError):
    """Finite weights whose outputs still overflow: a NaN figure is an error, not a result."""


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


def score(model, loader, samples: int, group=None) -> dict:
    """Counted per sample over the whole loader: the mean NLL and the likelihood's
    figure (accuracy and error for classes, RMSE for regression: model/likelihood.py),
    each sample's prediction averaged over `samples` passes. Given a
    utils.distributed.ProcessGroup whose processes each hold a shard of the data, the
    counts are summed over all of them first."""
    return _score(model, loader, samples, group, calibration_bins=None)


def score_with_calibration(model, loader, samples: int, bins: int) -> dict:
    """score() and, for classes, the calibration figures of calibration() in `bins` bins."""
    return _score(model, loader, samples, None, calibration_bins=bins)


@paddle.no_grad()
def _score(model, loader, samples: int, group, calibration_bins: int | None) -> dict:
    model.eval()
    likelihood = likelihood_of(model)
    n = 0
    nll_sum = fit = 0.0
    kept_probs, kept_labels = [], []
    for inputs, targets in tqdm(loader, desc=f"scoring ({samples} {'pass' if samples == 1 else 'passes'})", leave=False, disable=None):  # a bar on a terminal only
        outputs = likelihood.mc_outputs(model, inputs, samples)
        nll_sum += float(likelihood.nll(outputs, targets, reduction="sum"))
        fit += likelihood.fit_sum(outputs, targets)
        n += targets.shape[0]
        if calibration_bins and not likelihood.is_regression:
            kept_probs.append(paddle.exp(outputs).numpy())
            kept_labels.append(targets.numpy())
    if group is not None:
        n, fit, nll_sum = group.sum([n, fit, nll_sum])
        n = int(n)
    result = {"n": n, likelihood.metric: likelihood.metric_value(fit, n), "nll": nll_sum / n}
    if not math.isfinite(result["nll"]):
        raise NonFiniteScore(f"scoring gave NLL {result['nll']}: the weights are finite but the net's outputs overflow (weights from a training that blew up); use an earlier checkpoint")
    if not likelihood.is_regression:
        result["error"] = 100.0 * (n - fit) / n  # fit: the number of right answers
    if kept_probs:
        result.update(calibration(np.concatenate(kept_probs), np.concatenate(kept_labels), calibration_bins))
    return result
