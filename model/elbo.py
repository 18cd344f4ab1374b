"""The training objective: negative ELBO per training sample, and its KL weights.

Convention (one for all beta types). For minibatch i of M, with N training images,

    loss_i = mean NLL over the minibatch + beta_i * M * KL(q || p) / N

where beta_i is the share of the whole-data KL that minibatch i carries:
'Blundell' 2^(M-i) / (2^M - 1) and 'Standard' 1/M both sum to 1 over an epoch,
so the epoch's losses average to the negative ELBO per sample. 'Soenderby' and
a number c are multipliers of that ELBO: beta_i = c / M, so c = 1 is exactly
NLL + KL / N, the negative ELBO per sample, and Soenderby ramps c from 0 to 1.
"""
from __future__ import annotations

import math

import paddle
import paddle.nn.functional as F


def kl_weight(beta_type, batch_index: int, num_batches: int, epoch: int, num_epochs: int) -> float:
    """beta_i for minibatch batch_index (0-based) of num_batches in epoch (0-based) of num_epochs."""
    m = num_batches
    if beta_type == "Blundell":
        # 2^(M-i) / (2^M - 1) with i = batch_index + 1, written as 2^-i / (1 - 2^-M) so it never overflows.
        return math.ldexp(1.0, -(batch_index + 1)) / -math.expm1(-m * math.log(2))
    if beta_type == "Standard":
        return 1.0 / m
    if beta_type == "Soenderby":
        warmup = max(num_epochs // 4, 1)
        return min(epoch / warmup, 1.0) / m
    return float(beta_type) / m


def epoch_kl_weight(beta_type, num_batches: int, epoch: int, num_epochs: int) -> float:
    """c of the epoch: the sum of its beta_i, so that the epoch's mean training loss is
    NLL + c KL / N. 1 for Blundell and Standard (the negative ELBO), the number for a
    number, the ramp's value for Soenderby. Validation reports NLL + c KL / N too, so
    that both curves are the same quantity."""
    return sum(kl_weight(beta_type, i, num_batches, epoch, num_epochs) for i in range(num_batches))


def elbo_loss(outputs: paddle.Tensor, labels: paddle.Tensor, kl: paddle.Tensor, beta: float, num_batches: int, num_train: int, nll=None) -> paddle.Tensor:
    """Negative ELBO per sample for one minibatch (see the module docstring).

    outputs: the likelihood's Monte-Carlo outputs (model/likelihood.py): [B, C] log
    predictive probabilities for classes, and then nll may be left out; for another
    likelihood its `nll(outputs, labels)`, the mean NLL of the minibatch. The KL term
    is the same for every likelihood.
    """
    mean_nll = F.nll_loss(outputs, labels, reduction="mean") if nll is None else nll(outputs, labels)
    return mean_nll + beta * num_batches * kl / num_train
