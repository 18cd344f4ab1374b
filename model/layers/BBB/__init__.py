"""Bayes by Backprop: sample every weight, then the ordinary linear / conv2d."""
from model.layers.base import BayesianConv2d, BayesianLinear


class WeightSampling:
    def forward(self, x):
        weight, bias = self.draw_weights() if self.sample else (self.weight_mu, self.bias_mu)
        return self._op(x, weight, bias)


class BBBLinear(WeightSampling, BayesianLinear):
    pass


class BBBConv2d(WeightSampling, BayesianConv2d):
    pass


__all__ = ["BBBLinear", "BBBConv2d"]
