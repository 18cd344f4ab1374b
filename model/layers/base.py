"""What every Bayesian layer shares: the Gaussian posterior's parameters, the
prior, the KL term and the weight noise. BBB and BBB_LRT differ only in how the
posterior feeds the output (forward / forward_with_kl).

Where the KL is computed: `draw_with_kl` (BBB) and `variances_with_kl` (LRT)
below, in the same pass as what the forward needs from the posterior. A net
asks for it through ModuleWrapper.forward, i.e. a training step; the output
alone (`forward`, ModuleWrapper.logits: evaluation passes, exported models)
computes no KL.
"""
from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from model.layers import fused
from model.layers.conv import conv2d
from model.layers.noise import standard_normal_like
from model.layers.priors import GaussianPrior


# model.posterior.init -> the initializer of mu and rho, given the config's pair.
INITIALIZERS = {
    "normal": lambda pair: nn.initializer.Normal(pair[0], pair[1]),     # [mean, std]
    "uniform": lambda pair: nn.initializer.Uniform(pair[0], pair[1]),   # [low, high]
}


class BayesianLayer(nn.Layer):
    """q(w) = N(mu, softplus(rho)^2) for every weight and bias.

    Subclasses say which operation the weights feed (`_op(x, weight, bias)`:
    linear or conv2d) and how the layer samples: `forward(x)` gives the output,
    `forward_with_kl(x)` the output and the layer's KL(q || p) from the same
    pass. `sample = False` makes the layer use the posterior means.
    """

    def __init__(self, weight_shape: list[int], bias_shape: list[int] | None, prior=None, mu_init=(0.0, 0.1), rho_init=(-5.0, 0.1), init: str = "normal"):
        super().__init__()
        self.prior = prior if prior is not None else GaussianPrior(0.0, 0.1)
        self.sample = True

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

    @staticmethod
    def _weight_and_bias(tensors: list[paddle.Tensor]) -> tuple[paddle.Tensor, paddle.Tensor | None]:
        return tensors[0], tensors[1] if len(tensors) > 1 else None

    # -- the posterior alone: evaluation passes --------------------------------

    def draw(self) -> tuple[paddle.Tensor, paddle.Tensor | None]:
        """One sample w = mu + softplus(rho) * eps of the weight and the bias (or None)."""
        drawn = []
        for mu, rho in self._params():
            eps = standard_normal_like(mu)
            w = fused.posterior_sample(mu, rho, eps)  # one C++ pass where it runs and no gradient is wanted
            drawn.append(mu + F.softplus(rho) * eps if w is None else w)
        return self._weight_and_bias(drawn)

    def variances(self) -> tuple[paddle.Tensor, paddle.Tensor | None]:
        """sigma^2 = softplus(rho)^2 of the weight and the bias (or None)."""
        found = []
        for mu, rho in self._params():
            var = fused.posterior_variance(mu, rho)  # as in draw()
            found.append(paddle.square(F.softplus(rho)) if var is None else var)
        return self._weight_and_bias(found)

    # -- the posterior with its KL: training steps -----------------------------

    def draw_with_kl(self) -> tuple[tuple[paddle.Tensor, paddle.Tensor | None], paddle.Tensor]:
        """draw() and KL(q || p) summed over the layer's weights and biases: closed
        form for a Gaussian prior, log q(w) - log p(w) at this draw for the mixture."""
        drawn, kls = [], []
        for mu, rho in self._params():
            eps = standard_normal_like(mu)
            # The fused C++ operator does the same in one pass over the weights
            # (model/layers/fused.py: 3 to 5 times faster on the CPU); None where it cannot run.
            w_kl = self.prior.fused_sample_kl(mu, rho, eps)
            if w_kl is None:
                sigma = F.softplus(rho)
                w = mu + sigma * eps
                w_kl = w, self.prior.kl(mu, sigma, w)
            drawn.append(w_kl[0])
            kls.append(w_kl[1])
        return self._weight_and_bias(drawn), sum(kls)

    def variances_with_kl(self) -> tuple[tuple[paddle.Tensor, paddle.Tensor | None], paddle.Tensor]:
        """variances() and KL(q || p) summed over the layer's weights and biases;
        a prior without a closed form estimates it at one weight draw mu + sigma * eps."""
        variances, kls = [], []
        for mu, rho in self._params():
            eps = None if self.prior.closed_form_kl else standard_normal_like(mu)
            var_kl = self.prior.fused_variance_kl(mu, rho, eps)  # the same in one C++ pass, or None (as in draw_with_kl)
            if var_kl is None:
                sigma = F.softplus(rho)
                var = paddle.square(sigma)
                var_kl = var, self.prior.kl(mu, sigma, None if eps is None else mu + sigma * eps, var)
            variances.append(var_kl[0])
            kls.append(var_kl[1])
        return self._weight_and_bias(variances), sum(kls)

    def kl(self) -> paddle.Tensor:
        """KL(q || p) of the layer on its own (a net using its mean weights)."""
        return self.variances_with_kl()[1]


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
        return conv2d(x, weight, bias, stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups)


class FlattenLayer(nn.Layer):
    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return paddle.flatten(x, start_axis=1)


def _total(kls: list[paddle.Tensor]) -> paddle.Tensor:
    """The sum of the layers' KL terms; 0 for a net without Bayesian layers."""
    return sum(kls) if kls else paddle.zeros([], dtype="float32")


class ModuleWrapper(nn.Layer):
    """Base of every net: runs its sublayers in the order they were set.
    forward(x) returns (logits, kl), the KL summed over the Bayesian layers, each
    computed in the same pass as the layer's output; logits(x) the output alone.
    Bayesian layers are direct children of the net (nets.py), so that forward finds them."""

    def forward(self, x: paddle.Tensor) -> tuple[paddle.Tensor, paddle.Tensor]:
        kls = []
        for layer in self.children():
            if isinstance(layer, BayesianLayer):
                x, kl = layer.forward_with_kl(x)
                kls.append(kl)
            else:
                x = layer(x)
        return x, _total(kls)

    def logits(self, x: paddle.Tensor) -> paddle.Tensor:
        """The output without a KL: evaluation passes and exported models (export.py)."""
        for layer in self.children():
            x = layer(x)
        return x

    def bayesian_layers(self) -> list[BayesianLayer]:
        return [layer for layer in self.sublayers() if isinstance(layer, BayesianLayer)]

    def kl(self) -> paddle.Tensor:
        """KL(q || p) of the whole net on its own, without a forward pass."""
        return _total([layer.kl() for layer in self.bayesian_layers()])

    def set_sampling(self, sample: bool) -> None:
        """True: Monte-Carlo (weights or activations sampled); False: posterior mean weights."""
        for layer in self.bayesian_layers():
            layer.sample = sample

    @property
    def is_bayesian(self) -> bool:
        return bool(self.bayesian_layers())
