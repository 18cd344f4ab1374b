"""Local reparameterisation (Kingma et al. 2015): sample the activations, not the weights.

The pre-activation of a layer with Gaussian weights is Gaussian with
mean op(x, mu_w, mu_b) and variance op(x^2, sigma_w^2, sigma_b^2), so one normal
per output replaces one per weight, and the gradient has lower variance.
"""
from model.layers.base import BayesianConv2d, BayesianLinear
from model.layers.noise import normal_sample

VAR_EPS = 1e-16  # keeps sqrt differentiable where the variance is 0


class LocalReparameterization:
    def forward(self, x):
        act_mu = self._op(x, self.weight_mu, self.bias_mu)
        if not self.sample:
            return act_mu
        return self._sample_activations(x, act_mu, self.variances())

    def forward_with_kl(self, x):
        act_mu = self._op(x, self.weight_mu, self.bias_mu)
        if not self.sample:
            return act_mu, self.kl()
        variances, kl = self.variances_with_kl()
        return self._sample_activations(x, act_mu, variances), kl

    def _sample_activations(self, x, act_mu, variances):
        return normal_sample(act_mu, self._op(x * x, *variances), VAR_EPS)


class BBBLinear(LocalReparameterization, BayesianLinear):
    pass


class BBBConv2d(LocalReparameterization, BayesianConv2d):
    pass


__all__ = ["BBBLinear", "BBBConv2d"]
