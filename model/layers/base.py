"""What every Bayesian layer shares: the Gaussian posterior's parameters, the
prior, the KL term and the weight noise. BBB and BBB_LRT differ only in forward().
"""
from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from model.layers.noise import standard_normal_like
from model.layers.priors import GaussianPrior, normal_log_prob


# model.posterior.init -> the initializer of mu and rho, given the config's pair.
INITIALIZERS = {
    "normal": lambda pair: nn.initializer.Normal(pair[0], pair[1]),     # [mean, std]
    "uniform": lambda pair: nn.initializer.Uniform(pair[0], pair[1]),   # [low, high]
}


class BayesianLayer(nn.Layer):
    """q(w) = N(mu, softplus(rho)^2) for every weight and bias.

    Subclasses say which operation the weights feed (`_op(x, weight, bias)`:
    linear or conv2d) and how the layer samples (`forward`). `sample = False` makes the layer use the posterior means.
    """

    def __init__(self, weight_shape: list[int], bias_shape: list[int] | None, prior=None, mu_init=(0.0, 0.1), rho_init=(-5.0, 0.1), init: str = "normal"):
        super().__init__()
        self.prior = prior if prior is not None else GaussianPrior(0.0, 0.1)
        self.sample = True
        # What the last forward computed, reused by kl_loss() so that no pass over
        # the weights is made twice: the KL when a fused operator computed it, else
        # the (mu, sigma) pairs, the mixture prior's weight noise and sigma^2.
        self._posterior = self._kl = self._eps = self._variances = None

        def param(shape, pair):
            return self.create_parameter(shape, default_initializer=INITIALIZERS[init](pair))

        self.weight_mu = param(weight_shape, mu_init)
        self.weight_rho = param(weight_shape, rho_init)
        if bias_shape is None:
            self.bias_mu = self.bias_rho = None
        else:
            self.bias_mu = param(bias_shape, mu_init)
            self.bias_rho = param(bias_shape, rho_init)

    def _params(self) -> list[tuple[paddle.Tensor, paddle.Tensor]]:
        params = [(self.weight_mu, self.weight_rho)]
        if self.bias_mu is not None:
            params.append((self.bias_mu, self.bias_rho))
        return params

    def _softplus_fallback(self, params, eps) -> list[tuple[paddle.Tensor, paddle.Tensor]]:
        """The Paddle operators' (mu, sigma) pairs where the fused ones cannot run;
        kl_loss() then computes the KL from them (and the mixture's eps)."""
        self._kl, self._eps = None, eps
        self._posterior = [(mu, F.softplus(rho)) for mu, rho in params]
        return self._posterior

    def variances(self) -> list[paddle.Tensor]:
        """[sigma^2] of the weight and, if any, the bias (LRT's forward). The fused
        operators (model/layers/fused.py) give each with its KL term in one pass, and
        kl_loss() then only adds them up. The mixture prior's KL is estimated at one
        weight draw mu + sigma * eps, whose eps are drawn here."""
        params = self._params()
        eps = None if self.prior.closed_form_kl else [standard_normal_like(mu) for mu, _ in params]
        fused = [self.prior.fused_variance_kl(mu, rho, e) for (mu, rho), e in zip(params, eps or [None] * len(params))]
        if all(result is not None for result in fused):
            self._kl = sum(kl for _, kl in fused)
            return [var for var, _ in fused]
        self._variances = [paddle.square(sigma) for _, sigma in self._softplus_fallback(params, eps)]
        return self._variances

    def draw_weights(self) -> list[paddle.Tensor]:
        """One sample w = mu + sigma * eps of the weight and, if any, the bias (BBB's
        forward); from the fused operators with its KL term (the mixture's at this draw)."""
        params = self._params()
        eps = [standard_normal_like(mu) for mu, _ in params]
        fused = [self.prior.fused_sample_kl(mu, rho, e) for (mu, rho), e in zip(params, eps)]
        if all(result is not None for result in fused):
            self._kl = sum(kl for _, kl in fused)
            return [w for w, _ in fused]
        return [mu + sigma * e for (mu, sigma), e in zip(self._softplus_fallback(params, eps), eps)]

    def kl_loss(self) -> paddle.Tensor:
        """KL(q || p) summed over weights and biases: closed form, or log q(w) - log p(w) at a sample."""
        if self._kl is None and self._posterior is None:  # no sampled forward since the last call
            self.variances()
        kl, pairs, eps, variances = self._kl, self._posterior, self._eps, self._variances
        self._posterior = self._kl = self._eps = self._variances = None
        if kl is not None:
            return kl
        if self.prior.closed_form_kl:
            return sum(self.prior.kl(mu, sigma, var) for (mu, sigma), var in zip(pairs, variances or [None] * len(pairs)))
        drawn = [mu + sigma * e for (mu, sigma), e in zip(pairs, eps)]
        return sum((normal_log_prob(w, mu, sigma) - self.prior.log_prob(w)).sum() for w, (mu, sigma) in zip(drawn, pairs))


class BayesianLinear(BayesianLayer):
    def __init__(self, in_features: int, out_features: int, bias: bool = True, **posterior):
        super().__init__([in_features, out_features], [out_features] if bias else None, **posterior)
        self.in_features, self.out_features = in_features, out_features

    def _op(self, x, weight, bias):
        return F.linear(x, weight, bias)


def _pair(value) -> tuple[int, int]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


class BayesianConv2d(BayesianLayer):
    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1, groups: int = 1, bias: bool = True, **posterior):
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"in_channels {in_channels} and out_channels {out_channels} must be divisible by groups {groups}")
        kernel_size = _pair(kernel_size)
        super().__init__([out_channels, in_channels // groups, *kernel_size], [out_channels] if bias else None, **posterior)
        self.stride, self.padding, self.dilation, self.groups = _pair(stride), _pair(padding), _pair(dilation), groups

    def _op(self, x, weight, bias):
        return F.conv2d(x, weight, bias, stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups)


class FlattenLayer(nn.Layer):
    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return paddle.flatten(x, start_axis=1)


class ModuleWrapper(nn.Layer):
    """Base of every net: runs its sublayers in the order they were set and
    returns (logits, kl), the KL summed over all Bayesian sublayers."""

    def forward(self, x: paddle.Tensor) -> tuple[paddle.Tensor, paddle.Tensor]:
        return self.logits(x), self.kl_loss()

    def logits(self, x: paddle.Tensor) -> paddle.Tensor:
        """The sublayers only, without the KL: what an exported model computes (export.py)."""
        for layer in self.children():
            x = layer(x)
        return x

    def bayesian_layers(self) -> list[BayesianLayer]:
        return [layer for layer in self.sublayers() if isinstance(layer, BayesianLayer)]

    def kl_loss(self) -> paddle.Tensor:
        layers = self.bayesian_layers()
        if not layers:
            return paddle.zeros([], dtype="float32")
        return sum(layer.kl_loss() for layer in layers)

    def set_sampling(self, sample: bool) -> None:
        """True: Monte-Carlo (weights or activations sampled); False: posterior mean weights."""
        for layer in self.bayesian_layers():
            layer.sample = sample

    @property
    def is_bayesian(self) -> bool:
        return bool(self.bayesian_layers())
