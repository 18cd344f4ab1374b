"""Predictive uncertainty from T Monte-Carlo passes (Kwon et al. 2020; Shridhar et al. 2018).

For class-probability vectors p_t (t = 1..T) and their mean p_bar:
aleatoric_k = p_bar_k - mean_t p_t,k^2 and epistemic_k = mean_t (p_t,k - p_bar_k)^2,
the diagonals of the two parts of the predictive covariance; they add up to
p_bar_k (1 - p_bar_k), the variance of a one-hot draw from p_bar, so their sums
over classes add up to 1 - sum_k p_bar_k^2.

The passes' probabilities come from their logits by one of two methods:
'softmax' (the usual class probabilities) or 'normalized' (Shridhar et al. 2018:
softplus(logits) / sum softplus(logits), which keeps the logits' spread instead
of letting the exponential flatten it).
"""
from __future__ import annotations

import numpy as np

METHODS = ("softmax", "normalized")

# Per-input scores, each oriented so that a higher value means "less sure",
# except max_probability (higher = more confident), listed in CONFIDENCE_SCORES.
SCORE_NAMES = (
    "max_probability",
    "entropy",
    "mutual_information",
    "epistemic_softmax",
    "aleatoric_softmax",
    "epistemic_normalized",
    "aleatoric_normalized",
)
CONFIDENCE_SCORES = ("max_probability",)
# Scores that measure disagreement between passes: always 0 for a single pass.
EPISTEMIC_SCORES = ("mutual_information", "epistemic_softmax", "epistemic_normalized")


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    shifted = logits - logits.max(axis=axis, keepdims=True)  # exp cannot overflow
    e = np.exp(shifted)
    return e / e.sum(axis=axis, keepdims=True)


def softplus_normalized(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """softplus(logits) / sum softplus(logits): Shridhar et al.'s 'normalized' probabilities."""
    # Work with log softplus: softplus(x) underflows to 0 for x below about -745,
    # where log softplus(x) = log log(1 + e^x) is x to within e^x / 2.
    logits = np.asarray(logits, dtype=np.float64)
    very_negative = logits < -30.0
    log_s = np.where(very_negative, logits, np.log(np.logaddexp(0.0, np.where(very_negative, 0.0, logits))))
    return softmax(log_s, axis=axis)  # exp(log_s) / sum exp(log_s), shifted so nothing overflows


def pass_probabilities(logits: np.ndarray, method: str) -> np.ndarray:
    """Logits [T, ..., C] -> each pass's probabilities by 'softmax' or 'normalized'."""
    logits = np.asarray(logits, dtype=np.float64)
    if method == "softmax":
        return softmax(logits)
    if method == "normalized":
        return softplus_normalized(logits)
    raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")


def softmax_uncertainty(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """probs [T, ..., C] -> (aleatoric [..., C], epistemic [..., C]).

    The decomposition works for any per-pass probabilities; the name says that
    it is applied to softmax outputs unless the caller passes other ones."""
    p_bar = probs.mean(axis=0)
    aleatoric = p_bar - (probs**2).mean(axis=0)
    epistemic = ((probs - p_bar) ** 2).mean(axis=0)
    return aleatoric, epistemic


def entropy(p: np.ndarray, axis: int = -1) -> np.ndarray:
    return -(p * np.log(np.clip(p, 1e-12, None))).sum(axis=axis)


def mutual_information(probs: np.ndarray) -> np.ndarray:
    """H[p_bar] - mean_t H[p_t]: how much the passes disagree."""
    return entropy(probs.mean(axis=0)) - entropy(probs).mean(axis=0)


def decompose(logits: np.ndarray) -> dict:
    """Per-class aleatoric and epistemic vectors [..., C] and their sums [...], by both methods."""
    out = {}
    for method in METHODS:
        aleatoric, epistemic = softmax_uncertainty(pass_probabilities(logits, method))
        out[method] = {
            "aleatoric": aleatoric,
            "epistemic": epistemic,
            "aleatoric_sum": aleatoric.sum(axis=-1),
            "epistemic_sum": epistemic.sum(axis=-1),
        }
    return out


def uncertainty_scores(logits: np.ndarray) -> dict[str, np.ndarray]:
    """Logits [T, N, C] of T passes over N inputs -> {score name: [N]} for every SCORE_NAMES entry.

    Max probability, entropy and mutual information use the softmax probabilities."""
    probs = pass_probabilities(logits, "softmax")
    p_bar = probs.mean(axis=0)
    parts = decompose(logits)
    return {
        "max_probability": p_bar.max(axis=-1),
        "entropy": entropy(p_bar),
        "mutual_information": mutual_information(probs),
        "epistemic_softmax": parts["softmax"]["epistemic_sum"],
        "aleatoric_softmax": parts["softmax"]["aleatoric_sum"],
        "epistemic_normalized": parts["normalized"]["epistemic_sum"],
        "aleatoric_normalized": parts["normalized"]["aleatoric_sum"],
    }
