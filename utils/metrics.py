"""Scores for detection and calibration, with NumPy only.

Detection (AUROC, AUPR) takes binary labels (1 = the positive class, e.g. an
out-of-distribution input) and a score that is higher for positives. Calibration
(ECE, reliability bins, Brier score) takes the predicted probabilities. All
return fractions (0..1), not percent; callers that report percent say so.
"""
from __future__ import annotations

import numpy as np


def _check_labels(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels).astype(bool).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if labels.shape != scores.shape:
        raise ValueError(f"labels and scores differ in length: {labels.size} and {scores.size}")
    if labels.all() or not labels.any():
        raise ValueError("AUROC and AUPR need at least one positive and one negative example")
    return labels, scores


def midranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of values in ascending order, tied values sharing the mean of their ranks."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    first = np.cumsum(counts) - counts  # 0-based rank of each distinct value's first copy
    return (first + (counts + 1) / 2.0)[inverse.ravel()]


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve: the chance that a random positive scores above a
    random negative, ties counted half (the Mann-Whitney U statistic, from ranks)."""
    labels, scores = _check_labels(labels, scores)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    rank_sum = midranks(scores)[labels].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the precision-recall curve as average precision: sum over
    thresholds of (recall gain) x precision, tied scores taken as one threshold."""
    labels, scores = _check_labels(labels, scores)
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores, sorted_labels = scores[order], labels[order]
    # the last position of each run of equal scores is where a threshold takes effect
    last = np.r_[np.flatnonzero(np.diff(sorted_scores)), sorted_scores.size - 1]
    true_pos = np.cumsum(sorted_labels)[last]
    precision = true_pos / (last + 1.0)
    recall_gain = np.diff(np.r_[0, true_pos]) / labels.sum()
    return float((recall_gain * precision).sum())


def reliability_bins(confidence: np.ndarray, correct: np.ndarray, bins: int = 15) -> dict:
    """Equal-width confidence bins on [0, 1]: bin b holds confidences in (b/B, (b+1)/B]
    (bin 0 also holds 0). Returns per-bin 'count', mean 'confidence' and 'accuracy'
    (NaN for empty bins), and the bin 'edges'."""
    confidence = np.asarray(confidence, dtype=np.float64).ravel()
    correct = np.asarray(correct, dtype=np.float64).ravel()
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    count = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(index, weights=confidence, minlength=bins) / count
        accuracy = np.bincount(index, weights=correct, minlength=bins) / count
    return {"edges": edges, "count": count, "confidence": mean_conf, "accuracy": accuracy}


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 15) -> float:
    """ECE as a fraction: sum over bins of (share of samples) x |accuracy - mean confidence|."""
    table = reliability_bins(confidence, correct, bins)
    filled = table["count"] > 0
    gaps = np.abs(table["accuracy"][filled] - table["confidence"][filled])
    return float((table["count"][filled] * gaps).sum() / table["count"].sum())


def brier_score(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean over samples of sum_k (p_k - [k == label])^2; 0 is perfect, 2 the worst."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels).astype(np.int64).ravel()
    one_hot = np.zeros_like(probs)
    one_hot[np.arange(labels.size), labels] = 1.0
    return float(((probs - one_hot) ** 2).sum(axis=-1).mean())
