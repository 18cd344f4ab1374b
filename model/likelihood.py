"""What the net's outputs mean: class logits (categorical) or the mean of a
Gaussian over a real target (regression). Training and validation ask the
net's likelihood for the Monte-Carlo outputs, the NLL and the figure to report
beside it; the ELBO is the same for both, only its NLL term differs.

The Gaussian works on standardised targets (data/tabular.py) and has one
noise std for all inputs (homoscedastic): fixed, or learned as a parameter of
the net's last layer, sigma = softplus(gaussian.noise_rho), saved in its
checkpoints. Its name ends in _rho, so the optimiser never applies weight decay to it.
"""
from __future__ import annotations

import math

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from model.layers.priors import normal_log_prob
from model.mc import log_mean_exp, mc_log_probs, mc_log_probs_and_kl


class Categorical:
    """Class labels; reports the accuracy in percent, and the best checkpoint has the highest."""

    is_regression = False
    metric = "acc"
    best_key = "acc"
    worst = -1.0

    def mc_outputs_and_kl(self, model, x: paddle.Tensor, samples: int, average: str = "predictive") -> tuple[paddle.Tensor, paddle.Tensor]:
        """A training step's: log probabilities [B, C] of the passes, averaged as `average` says (model/mc.py), and the KL."""
        return mc_log_probs_and_kl(model, x, samples, average)

    def mc_outputs(self, model, x: paddle.Tensor, samples: int) -> paddle.Tensor:
        """Log predictive probabilities [B, C] averaged over the passes (no KL)."""
        return mc_log_probs(model, x, samples)

    def nll(self, outputs: paddle.Tensor, labels: paddle.Tensor, reduction: str = "mean") -> paddle.Tensor:
        return F.nll_loss(outputs, labels, reduction=reduction)

    def fit_sum(self, outputs: paddle.Tensor, labels: paddle.Tensor) -> float:
        """The number of right answers."""
        return float((outputs.argmax(axis=-1) == labels).astype("int64").sum())

    def metric_value(self, fit_sum: float, n: int) -> float:
        return 100.0 * fit_sum / n

    def format_metric(self, value: float) -> str:
        return f"acc {value:.2f}%"

    def improves(self, scores: dict, best: float) -> bool:
        return scores["acc"] > best


class NoiseStd(nn.Layer):
    """The last layer of a regression net: predicted means [B, 1] -> [B, 2], the
    means beside the noise std. The std goes through forward() so that
    paddle.DataParallel, which averages the gradients of what forward uses,
    also averages the learned one's."""

    def __init__(self, start: float, learned: bool):
        super().__init__()
        self.fixed = None if learned else start
        if learned:
            rho = start + math.log(-math.expm1(-start))  # softplus(rho) = start, without overflow for a large start
            self.noise_rho = self.create_parameter([1], default_initializer=nn.initializer.Constant(rho))

    def std(self) -> paddle.Tensor:
        """sigma in standardised units, [1]."""
        if self.fixed is not None:
            return paddle.full([1], self.fixed, dtype="float32")
        return F.softplus(self.noise_rho)

    def forward(self, means: paddle.Tensor) -> paddle.Tensor:
        return paddle.concat([means, self.std().expand_as(means)], axis=1)


class Gaussian:
    """y ~ N(net(x), sigma^2) on standardised targets; reports the RMSE of the
    predictive mean in target units, and the best checkpoint has the lowest validation NLL.

    The net's outputs are [B, 2]: the predicted mean and the noise std (NoiseStd)."""

    is_regression = True
    metric = "rmse"
    best_key = "nll"
    worst = math.inf

    def __init__(self, target_std: float, noise: NoiseStd):
        self.target_std = target_std
        self.noise = noise

    def noise_std(self) -> float:
        """sigma in standardised units."""
        return float(self.noise.std()[0])

    def mc_outputs_and_kl(self, model, x: paddle.Tensor, samples: int, average: str = "predictive") -> tuple[paddle.Tensor, paddle.Tensor]:
        """A training step's: the outputs of every pass [T, B, 2] (mean, noise std), and the KL averaged over the passes.
        Its NLL is always the predictive mixture's (the config refuses train.ens_objective elbo here)."""
        outputs, kls = [], []
        for _ in range(samples):
            out, kl = model(x)
            outputs.append(out)
            kls.append(kl)
        return paddle.stack(outputs), paddle.stack(kls).mean()

    def mc_outputs(self, model, x: paddle.Tensor, samples: int) -> paddle.Tensor:
        """The outputs of every pass [T, B, 2] (no KL)."""
        return paddle.stack([model.logits(x) for _ in range(samples)])

    def nll(self, outputs: paddle.Tensor, labels: paddle.Tensor, reduction: str = "mean") -> paddle.Tensor:
        """-log of the likelihood averaged over the passes (a mixture of Gaussians), per sample."""
        means, sigma = outputs[..., 0], outputs[..., 1]
        log_lik = log_mean_exp(normal_log_prob(labels.astype(outputs.dtype).reshape([1, -1]), means, sigma), axis=0)
        return -(log_lik.mean() if reduction == "mean" else log_lik.sum())

    def fit_sum(self, outputs: paddle.Tensor, labels: paddle.Tensor) -> float:
        """Squared error of the predictive mean, standardised."""
        error = outputs[..., 0].mean(axis=0) - labels.astype(outputs.dtype)
        return float((error * error).sum())

    def metric_value(self, fit_sum: float, n: int) -> float:
        return math.sqrt(fit_sum / n) * self.target_std

    def format_metric(self, value: float) -> str:
        return f"rmse {value:.4f}"

    def improves(self, scores: dict, best: float) -> bool:
        return scores["nll"] < best


CATEGORICAL = Categorical()


def attach_gaussian(model, model_cfg, target_std: float) -> None:
    """Make `model` a regression net: a NoiseStd last layer with model.noise_std
    (given in target units) fixed, or as the starting value of a learned std."""
    noise = NoiseStd(model_cfg.noise_std / target_std, learned=model_cfg.noise == "learned")
    model.add_sublayer("gaussian", noise)  # the last child: ModuleWrapper runs its children in order
    model.likelihood = Gaussian(target_std, noise)


def likelihood_of(model):
    """The net's likelihood (also through a paddle.DataParallel wrapper, which
    does not pass on plain attributes); nets built without build_net (tests, benchmarks) classify."""
    inner = model._layers if isinstance(model, paddle.DataParallel) else model
    return getattr(inner, "likelihood", CATEGORICAL)
