"""Bayes by Backprop: sample every weight, then the ordinary linear / conv2d."""
from model.layers.base import BayesianConv2d, BayesianLinear


class WeightSampling:
    def forward(self, x):
        if not self.sample:
            return self._op(x, self.weight_mu, self.bias_mu)
        return self._op(x, *self.draw())

    def forward_with_kl(self, x):
        if not self.sample:
            return self._op(x, self.weight_mu, self.bias_mu), self.kl()
        (weight, bias), kl = self.draw_with_kl()
        return self._op(x, weight, bias), kl


class BBBLinear(WeightSampling, BayesianLinear):
    pass


class BBBConv2d(WeightSampling, BayesianConv2d):
    pass


__all__ = ["BBBLinear", "BBBConv2d"]
