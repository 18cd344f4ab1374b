"""Weight pruning by signal-to-noise ratio |mu| / sigma (Blundell et al. 2015, Table 2).

The weights (not the biases, as in the paper) of every Bayesian layer are ranked
by their SNR, over all layers together by default (the paper's ranking) or
within each layer, and the lowest fraction is set to zero: mu = 0 and sigma
about 0, so that sampling keeps a pruned weight at zero too.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import paddle

from model.layers.base import BayesianLayer, ModuleWrapper

# rho of a pruned weight: softplus(-100) = e^-100, about 4e-44 (a float32 subnormal):
# zero for any forward pass, and log(sigma) = -100 stays finite in the KL.
PRUNED_RHO = -100.0
RANKINGS = ("global", "per_layer")


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def weight_snr(net: ModuleWrapper) -> dict[str, np.ndarray]:
    """|mu| / sigma of every weight of every Bayesian layer, by layer name (float64)."""
    snr = {}
    for name, layer in net.named_sublayers():
        if isinstance(layer, BayesianLayer):
            mu = layer.weight_mu.numpy().astype(np.float64)
            snr[name] = np.abs(mu) / _softplus(layer.weight_rho.numpy().astype(np.float64))
    return snr


def snr_db(snr: dict[str, np.ndarray]) -> np.ndarray:
    """All weights' SNR in decibels, 10 log10(|mu| / sigma), as in the paper's Figure 4."""
    values = np.concatenate([v.ravel() for v in snr.values()])
    return 10.0 * np.log10(np.maximum(values, 1e-30))


def prune_masks(snr: dict[str, np.ndarray], fraction: float, ranking: str = "global") -> dict[str, np.ndarray]:
    """Boolean keep-masks: the round(fraction x count) weights of lowest SNR are dropped,
    counted over all layers together ('global') or within each layer ('per_layer').
    Ties go by position, so the count is exact."""
    if ranking == "per_layer":
        return {name: prune_masks({name: values}, fraction)[name] for name, values in snr.items()}
    flat = np.concatenate([v.ravel() for v in snr.values()])
    drop = int(round(fraction * flat.size))
    keep = np.ones(flat.size, dtype=bool)
    keep[np.argsort(flat, kind="stable")[:drop]] = False
    masks, start = {}, 0
    for name, values in snr.items():
        masks[name] = keep[start:start + values.size].reshape(values.shape)
        start += values.size
    return masks


def apply_masks(net: ModuleWrapper, masks: dict[str, np.ndarray]) -> None:
    """Set each pruned weight's mu to 0 and its sigma to about 0, in place."""
    layers = dict(net.named_sublayers())
    for name, keep in masks.items():
        layer = layers[name]
        keep_t = paddle.to_tensor(keep)
        layer.weight_mu.set_value(paddle.where(keep_t, layer.weight_mu, paddle.zeros_like(layer.weight_mu)))
        layer.weight_rho.set_value(paddle.where(keep_t, layer.weight_rho, paddle.full_like(layer.weight_rho, PRUNED_RHO)))


@dataclass(frozen=True)
class SparseSize:
    """What a sparse save of the pruned weights would take: CSR per layer, float32
    values (mu and sigma of each kept weight) and int32 column indices and row
    pointers, with each weight seen as a matrix [first axis, the rest]; biases dense."""

    kept_weights: int
    total_weights: int
    biases: int
    bytes: int


def sparse_size(net: ModuleWrapper, masks: dict[str, np.ndarray]) -> SparseSize:
    layers = dict(net.named_sublayers())
    kept = total = biases = size = 0
    for name, keep in masks.items():
        rows = keep.shape[0]
        n = int(keep.sum())
        kept, total = kept + n, total + keep.size
        size += n * (4 + 4 + 4) + (rows + 1) * 4  # mu, sigma, column index; row pointers
        bias = layers[name].bias_mu
        if bias is not None:
            biases += int(bias.size)
            size += int(bias.size) * 2 * 4  # mu and sigma, dense
    return SparseSize(kept, total, biases, size)


def snapshot(net: ModuleWrapper) -> dict[str, np.ndarray]:
    """A copy of the net's parameters, to restore between fractions."""
    return {k: v.numpy().copy() for k, v in net.state_dict().items()}


def restore(net: ModuleWrapper, state: dict[str, np.ndarray]) -> None:
    net.set_state_dict({k: paddle.to_tensor(v) for k, v in state.items()})
