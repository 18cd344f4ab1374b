"""Priors over weights: what the KL term of the ELBO measures against."""
from __future__ import annotations

import math
from typing import Protocol

import paddle

from model.layers.fused import gaussian_sample_kl, gaussian_variance_kl, mixture_sample_kl, mixture_variance_kl

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def normal_log_prob(x: paddle.Tensor, mu, sigma) -> paddle.Tensor:
    """Elementwise log N(x | mu, sigma^2); mu and sigma may be floats or tensors."""
    log_sigma = paddle.log(sigma) if isinstance(sigma, paddle.Tensor) else math.log(sigma)
    return -log_sigma - LOG_SQRT_2PI - 0.5 * paddle.square((x - mu) / sigma)


class Prior(Protocol):
    """What a prior over weights provides to the Bayesian layers (model/layers/base.py).

    closed_form_kl: True when kl() needs no weight draw; else the KL is the
        Monte-Carlo log q(w) - log p(w) at a draw w, and the layers draw one.
    log_prob(w): elementwise log p(w), a tensor of w's shape.
    kl(mu_q, sigma_q, w=None, var_q=None): KL(q || p) summed over the elements, a
        scalar tensor: exact for a closed form (w unused), else at the draw w.
        var_q = sigma_q^2 where the caller has it already.
    fused_variance_kl(mu, rho, eps) and fused_sample_kl(mu, rho, eps): the same KL
        with sigma^2 (LRT) or the draw mu + sigma * eps (BBB) from one C++ pass, as a
        (tensor, scalar KL) pair; None where the C++ operators cannot run, and then
        the layer computes both with Paddle's operators and kl().
    """

    closed_form_kl: bool

    def log_prob(self, w: paddle.Tensor) -> paddle.Tensor: ...

    def kl(self, mu_q: paddle.Tensor, sigma_q: paddle.Tensor, w: paddle.Tensor | None = None, var_q: paddle.Tensor | None = None) -> paddle.Tensor: ...

    def fused_variance_kl(self, mu: paddle.Tensor, rho: paddle.Tensor, eps: paddle.Tensor | None): ...

    def fused_sample_kl(self, mu: paddle.Tensor, rho: paddle.Tensor, eps: paddle.Tensor): ...


class GaussianPrior:
    """p(w) = N(mu, sigma^2): KL(q || p) has a closed form."""

    closed_form_kl = True

    def __init__(self, mu: float, sigma: float):
        self.mu = mu
        self.sigma = sigma

    def log_prob(self, w: paddle.Tensor) -> paddle.Tensor:
        return normal_log_prob(w, self.mu, self.sigma)

    def kl(self, mu_q: paddle.Tensor, sigma_q: paddle.Tensor, w: paddle.Tensor | None = None, var_q: paddle.Tensor | None = None) -> paddle.Tensor:
        """Sum over elements of KL(N(mu_q, sigma_q^2) || N(mu, sigma^2)), in closed form
        (no draw w needed); var_q = sigma_q^2 when the caller has it already (LRT does)."""
        # Each term summed on its own, the constants applied to the sums: every
        # elementwise pass over millions of weights (and its gradient) costs
        # milliseconds on the CPU. paddle.square, not `** 2`: Paddle's pow kernel is ~20x slower.
        var_q = paddle.square(sigma_q) if var_q is None else var_q
        d = mu_q - self.mu if self.mu else mu_q
        squares = var_q.sum() + paddle.square(d).sum()
        return mu_q.size * (math.log(self.sigma) - 0.5) - paddle.log(sigma_q).sum() + squares / (2 * self.sigma**2)

    def fused_variance_kl(self, mu: paddle.Tensor, rho: paddle.Tensor, eps=None):
        """(softplus(rho)^2, the KL) in one C++ pass, or None where it cannot run (model/layers/fused.py)."""
        return gaussian_variance_kl(mu, rho, self.mu, self.sigma)

    def fused_sample_kl(self, mu: paddle.Tensor, rho: paddle.Tensor, eps: paddle.Tensor):
        """(the draw mu + softplus(rho) * eps, the KL) in one C++ pass, or None."""
        return gaussian_sample_kl(mu, rho, eps, self.mu, self.sigma)


class ScaleMixturePrior:
    """p(w) = pi N(0, sigma1^2) + (1 - pi) N(0, sigma2^2) (Blundell et al.): no closed-form KL."""

    closed_form_kl = False

    def __init__(self, pi: float, sigma1: float, sigma2: float):
        self.pi = pi
        self.sigma1 = sigma1
        self.sigma2 = sigma2

    def log_prob(self, w: paddle.Tensor) -> paddle.Tensor:
        # log-sum-exp over the two components: finite for any w, however large or small.
        log_pi = math.log(self.pi) if self.pi > 0 else -math.inf
        log_1m_pi = math.log(1 - self.pi) if self.pi < 1 else -math.inf
        # Flat, because Paddle 3's logsumexp takes at most 4-D input and a conv kernel
        # stacked with its twin is 5-D.
        flat = w.reshape([-1])
        parts = paddle.stack(
            [
                log_pi + normal_log_prob(flat, 0.0, self.sigma1),
                log_1m_pi + normal_log_prob(flat, 0.0, self.sigma2),
            ]
        )
        return paddle.logsumexp(parts, axis=0).reshape(w.shape)

    def kl(self, mu_q: paddle.Tensor, sigma_q: paddle.Tensor, w: paddle.Tensor | None = None, var_q: paddle.Tensor | None = None) -> paddle.Tensor:
        """log q(w) - log p(w) summed over the elements at the draw w: an unbiased estimate of the KL."""
        if w is None:
            raise ValueError("the scale-mixture prior's KL is estimated at a weight draw: pass w")
        return (normal_log_prob(w, mu_q, sigma_q) - self.log_prob(w)).sum()

    def fused_variance_kl(self, mu: paddle.Tensor, rho: paddle.Tensor, eps: paddle.Tensor):
        """(softplus(rho)^2, log q(w) - log p(w) at w = mu + sigma * eps) in one C++ pass, or None."""
        return mixture_variance_kl(mu, rho, eps, self.pi, self.sigma1, self.sigma2)

    def fused_sample_kl(self, mu: paddle.Tensor, rho: paddle.Tensor, eps: paddle.Tensor):
        """(w = mu + softplus(rho) * eps, log q(w) - log p(w)) in one C++ pass, or None."""
        return mixture_sample_kl(mu, rho, eps, self.pi, self.sigma1, self.sigma2)


# model.prior.type -> the prior built from the model.prior section
PRIORS = {
    "gaussian": lambda c: GaussianPrior(c.mu, c.sigma),
    "mixture": lambda c: ScaleMixturePrior(c.pi, c.sigma1, c.sigma2),
}


def build_prior(prior_cfg) -> Prior:
    if prior_cfg.type not in PRIORS:
        raise ValueError(f"unknown prior type {prior_cfg.type!r}; choose {', '.join(PRIORS)}")
    return PRIORS[prior_cfg.type](prior_cfg)
