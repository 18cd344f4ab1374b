"""Monte-Carlo forward passes of a Bayesian net.

Training needs the passes averaged with the KL of the same passes
(`mc_log_probs_and_kl`), the error the average alone (`mc_log_probs`); the
uncertainty scores need every pass, as logits (`mc_logits`, `loader_logits`):
the 'normalized' method works on logits, not probabilities. Only the training
function asks the net for its KL (ModuleWrapper.forward); the others run
ModuleWrapper.logits, which computes none.
"""
from __future__ import annotations

import math

import numpy as np
import paddle
import paddle.nn.functional as F
from tqdm import tqdm


def log_mean_exp(x: paddle.Tensor, axis: int = 0) -> paddle.Tensor:
    return paddle.logsumexp(x, axis=axis) - math.log(x.shape[axis])


def _mean_log_likelihood(log_probs: list[paddle.Tensor]) -> paddle.Tensor:
    """the mean of the passes' log-probabilities: its NLL is the mean of the passes' NLLs."""
    return log_probs[0] if len(log_probs) == 1 else paddle.stack(log_probs).mean(axis=0)


def mc_log_probs_and_kl(model, x: paddle.Tensor, samples: int, average: str = "predictive") -> tuple[paddle.Tensor, paddle.Tensor]:
    """A training step's Monte-Carlo ensemble over `samples` forward passes, and the KL
    averaged over the same passes. average (train.ens_objective, TRAIN_AVERAGES):
    'predictive' returns the log of the passes' mean probabilities, 'elbo' the mean of
    their log-probabilities, so the NLL is the Monte-Carlo ELBO's and its gradient the
    mean of the passes' gradients. One pass gives the same either way.
    `model` is the net or its paddle.DataParallel wrapper."""
    log_probs, kls = [], []
    for _ in range(samples):
        logits, kl = model(x)
        log_probs.append(F.log_softmax(logits, axis=-1))
        kls.append(kl)
    return TRAIN_AVERAGES[average](log_probs), kls[0] if samples == 1 else paddle.stack(kls).mean()


def mc_log_probs(model, x: paddle.Tensor, samples: int) -> paddle.Tensor:
    """Log of the predictive probabilities averaged over `samples` passes, without a KL."""
    return _predictive([F.log_softmax(model.logits(x), axis=-1) for _ in range(samples)])


def _predictive(log_probs: list[paddle.Tensor]) -> paddle.Tensor:
    """log of the mean of the passes' probabilities (one pass: its own)."""
    return log_probs[0] if len(log_probs) == 1 else log_mean_exp(paddle.stack(log_probs), axis=0)


# How a training step with train.train_ens > 1 passes averages them (train.ens_objective):
# 'predictive' as Shridhar et al.'s code (log of the mean probability), 'elbo' as
# Blundell et al. ("samples averaged per gradient").
TRAIN_AVERAGES = {"predictive": _predictive, "elbo": _mean_log_likelihood}


@paddle.no_grad()
def mc_logits(model, x: paddle.Tensor, samples: int) -> paddle.Tensor:
    """Logits of `samples` forward passes over the batch x: [samples, B, C]."""
    return paddle.stack([model.logits(x) for _ in range(samples)])


@paddle.no_grad()
def loader_logits(model, loader, samples: int) -> np.ndarray:
    """Per-pass logits over a whole loader, [samples, N, C] in float32. The loader
    yields images or (images, labels) batches; labels are ignored."""
    model.eval()
    chunks = []
    for batch in tqdm(loader, desc=f"{samples} passes", leave=False, disable=None):  # a bar on a terminal only
        images = batch[0] if isinstance(batch, (list, tuple)) else batch
        chunks.append(mc_logits(model, images, samples).numpy())
    return np.concatenate(chunks, axis=1)
