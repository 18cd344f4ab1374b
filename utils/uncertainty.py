"""Predictive uncertainty from T Monte-Carlo passes (Kwon et al. 2020; Shridhar et al. 2018).

For class-probability vectors p_t (t = 1..T) and their mean p_bar:
aleatoric_k = p_bar_k - mean_t p_t,k^2 and epistemic_k = mean_t (p_t,k - p_bar_k)^2,
the diagonals of the two parts of the predictive covariance; they add up to
p_bar_k (1 - p_bar_k), the variance of a one-hot draw from p_bar.
"""
from __future__ import annotations

import numpy as np


def softmax_uncertainty(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """probs [T, ..., C] -> (aleatoric [..., C], epistemic [..., C])."""
    p_bar = probs.mean(axis=0)
    aleatoric = p_bar - (probs**2).mean(axis=0)
    epistemic = ((probs - p_bar) ** 2).mean(axis=0)
    return aleatoric, epistemic


def entropy(p: np.ndarray, axis: int = -1) -> np.ndarray:
    return -(p * np.log(np.clip(p, 1e-12, None))).sum(axis=axis)


def mutual_information(probs: np.ndarray) -> np.ndarray:
    """H[p_bar] - mean_t H[p_t]: how much the passes disagree."""
    return entropy(probs.mean(axis=0)) - entropy(probs).mean(axis=0)
