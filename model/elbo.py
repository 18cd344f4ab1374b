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


def elbo_loss(log_probs: paddle.Tensor, labels: paddle.Tensor, kl: paddle.Tensor, beta: float, num_batches: int, num_train: int) -> paddle.Tensor:
    """Negative ELBO per sample for one minibatch (see the module docstring).

    log_probs: [B, C] log predictive probabilities; labels: [B] int64.
    """
    nll = F.nll_loss(log_probs, labels, reduction="mean")
    return nll + beta * num_batches * kl / num_train


def log_mean_exp(x: paddle.Tensor, axis: int = 0) -> paddle.Tensor:
    return paddle.logsumexp(x, axis=axis) - math.log(x.shape[axis])


def mc_log_probs(model, x: paddle.Tensor, samples: int) -> tuple[paddle.Tensor, paddle.Tensor]:
    """Monte-Carlo ensemble: log of the predictive probabilities averaged over `samples`
    forward passes, and the KL averaged over the same passes."""
    log_probs, kls = [], []
    for _ in range(samples):
        logits, kl = model(x)
        log_probs.append(F.log_softmax(logits, axis=-1))
        kls.append(kl)
    if samples == 1:
        return log_probs[0], kls[0]
    return log_mean_exp(paddle.stack(log_probs), axis=0), paddle.stack(kls).mean()


def mc_probs(model, x: paddle.Tensor, samples: int) -> paddle.Tensor:
    """Class probabilities of each pass: [samples, B, C]."""
    return paddle.stack([F.softmax(model(x)[0], axis=-1) for _ in range(samples)])
