"""Bayes by Backprop: sample every weight, then the ordinary linear / conv2d."""
from model.layers.base import BayesianConv2d, BayesianLinear


class WeightSampling:
    def forward(self, x):
        if not self.sample:
            return self._op(x, self.weight_mu, self.bias_mu)
        drawn = self.draw_weights()
        return self._op(x, drawn[0], drawn[1] if len(drawn) > 1 else None)


class BBBLinear(WeightSampling, BayesianLinear):
    pass


class BBBConv2d(WeightSampling, BayesianConv2d):
    pass


__all__ = ["BBBLinear", "BBBConv2d"]
