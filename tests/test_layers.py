import math

import numpy as np
import paddle
import pytest

from model.layers import BBB, BBB_LRT
from model.layers.base import ModuleWrapper
from model.layers.priors import GaussianPrior, ScaleMixturePrior, normal_log_prob


def test_closed_form_kl_matches_a_monte_carlo_estimate():
    paddle.seed(0)
    prior = GaussianPrior(0.0, 0.1)
    mu = paddle.to_tensor([0.05, -0.2, 0.0, 0.3])
    sigma = paddle.to_tensor([0.01, 0.05, 0.1, 0.2])
    closed = float(prior.kl(mu, sigma))
    w = mu + sigma * paddle.randn([200000, 4])
    estimate = float((normal_log_prob(w, mu, sigma) - prior.log_prob(w)).sum(axis=1).mean())
    assert estimate == pytest.approx(closed, rel=0.01)


def test_kl_at_init_is_about_2_7_per_weight():
    layer = BBB.BBBLinear(1000, 1000, bias=False)
    assert float(layer.kl()) / 1e6 == pytest.approx(2.7, abs=0.15)


def test_scale_mixture_log_prior_is_finite_for_tiny_and_huge_weights():
    prior = ScaleMixturePrior(0.5, 1.0, math.exp(-7))
    w = paddle.to_tensor([0.0, 1e-30, -1e-12, 1e-3, 1.0, -50.0, 1e4, 1e15])
    log_p = prior.log_prob(w).numpy()
    assert np.all(np.isfinite(log_p))
    # for a huge weight only the wide component matters: log(0.5) + log N(w | 0, 1)
    assert log_p[-2] == pytest.approx(math.log(0.5) - 0.5 * math.log(2 * math.pi) - 0.5e8, rel=1e-6)


def test_scale_mixture_log_prior_matches_the_mixture_density():
    prior = ScaleMixturePrior(0.25, 1.0, 0.01)
    w = np.array([0.003, -0.5, 2.0])
    density = 0.25 * np.exp(-(w**2) / 2) / np.sqrt(2 * np.pi) + 0.75 * np.exp(-(w**2) / (2 * 1e-4)) / (0.01 * np.sqrt(2 * np.pi))
    assert prior.log_prob(paddle.to_tensor(w)).numpy() == pytest.approx(np.log(density), rel=1e-6)


def test_mixture_prior_kl_is_a_monte_carlo_estimate_for_both_layer_types():
    prior = ScaleMixturePrior(0.5, 1.0, 0.0025)
    for package in (BBB, BBB_LRT):
        linear = package.BBBLinear(20, 10, prior=prior)
        conv = package.BBBConv2d(2, 3, 3, prior=prior)  # 4-D kernels: Paddle 3's logsumexp refuses 5-D input
        for layer, x in ((linear, paddle.randn([4, 20])), (conv, paddle.randn([1, 2, 5, 5]))):
            _, kl = layer.forward_with_kl(x)
            assert math.isfinite(float(kl))
            kl.backward()
            assert layer.weight_rho.grad is not None


def _mean_and_var(layer, x, n=4000):
    outs = np.stack([layer(x).numpy() for _ in range(n)])
    return outs.mean(axis=0), outs.var(axis=0)


@pytest.mark.parametrize("kind", ["linear", "conv"])
def test_lrt_output_mean_and_variance_match_bbb(kind):
    paddle.seed(1)
    if kind == "linear":
        bbb, lrt = BBB.BBBLinear(6, 3, rho_init=(-2.0, 0.1)), BBB_LRT.BBBLinear(6, 3)
        x = paddle.randn([2, 6])
    else:
        bbb, lrt = BBB.BBBConv2d(2, 3, (3, 2), padding=1, rho_init=(-2.0, 0.1)), BBB_LRT.BBBConv2d(2, 3, (3, 2), padding=1)
        x = paddle.randn([1, 2, 4, 4])
    lrt.set_state_dict(bbb.state_dict())
    mean_b, var_b = _mean_and_var(bbb, x)
    mean_l, var_l = _mean_and_var(lrt, x)
    # analytic moments of the pre-activation
    lrt.sample = False
    exact_mean = lrt(x).numpy()
    assert np.abs(mean_b - exact_mean).max() < 0.05 and np.abs(mean_l - exact_mean).max() < 0.05
    np.testing.assert_allclose(var_l, var_b, rtol=0.15, atol=1e-4)
    assert var_b.mean() > 1e-3  # the test would be empty with negligible noise


def test_conv_layers_take_any_kernel_stride_padding_dilation_groups_and_no_bias():
    x = paddle.randn([2, 4, 9, 7])
    for package in (BBB, BBB_LRT):
        layer = package.BBBConv2d(4, 6, (3, 1), stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2, bias=False)
        assert layer.bias_mu is None
        assert list(layer(x).shape) == list(paddle.nn.functional.conv2d(x, layer.weight_mu, None, (2, 1), (1, 0), (1, 2), 2).shape)
        assert float(layer.kl()) > 0


def test_mean_mode_is_deterministic_and_sampling_is_not():
    for package in (BBB, BBB_LRT):
        net = ModuleWrapper()
        net.fc = package.BBBLinear(5, 4, rho_init=(-1.0, 0.1))
        x = paddle.randn([3, 5])
        a, b = net(x)[0].numpy(), net(x)[0].numpy()
        assert not np.allclose(a, b)
        net.set_sampling(False)
        np.testing.assert_allclose(net(x)[0].numpy(), net(x)[0].numpy())
        np.testing.assert_allclose(net(x)[0].numpy(), (x @ net.fc.weight_mu + net.fc.bias_mu).numpy(), rtol=1e-5)


def test_module_wrapper_sums_the_kl_of_all_bayesian_layers():
    net = ModuleWrapper()
    net.fc1 = BBB.BBBLinear(5, 4)
    net.act = paddle.nn.ReLU()
    net.fc2 = BBB.BBBLinear(4, 2)
    logits, kl = net(paddle.randn([3, 5]))
    assert list(logits.shape) == [3, 2]
    assert float(kl) == pytest.approx(float(net.fc1.kl()) + float(net.fc2.kl()), rel=1e-6)


def test_kl_gradient_reaches_mu_and_rho():
    layer = BBB.BBBLinear(3, 2)
    layer.kl().backward()
    assert float(layer.weight_rho.grad.abs().sum()) > 0 and float(layer.weight_mu.grad.abs().sum()) > 0


def test_the_output_alone_computes_no_kl(monkeypatch):
    """logits() (evaluation passes, exported models) never asks the prior for a KL;
    forward() asks once per weight tensor, in the pass that makes the output."""
    x = paddle.randn([3, 5])
    for package in (BBB, BBB_LRT):
        for prior in (GaussianPrior(0.0, 0.1), ScaleMixturePrior(0.5, 1.0, 0.0025)):
            net = ModuleWrapper()
            net.fc = package.BBBLinear(5, 4, prior=prior)
            calls = []
            for name in ("kl", "fused_sample_kl", "fused_variance_kl"):
                original = getattr(prior, name)
                monkeypatch.setattr(prior, name, lambda *a, _original=original, **k: calls.append(1) or _original(*a, **k))
            net.logits(x)
            assert calls == []
            net(x)
            assert len(calls) >= 2  # weight and bias (a fused call that falls back adds the kl() call)


def test_conv2d_with_its_fast_bias_gives_paddles_numbers_and_the_same_parameters():
    from model.layers.conv import Conv2D, conv2d

    paddle.seed(0)
    x = paddle.randn([4, 3, 9, 9])
    reference = paddle.nn.Conv2D(3, 6, 3, stride=2, padding=1)
    fast = Conv2D(3, 6, 3, stride=2, padding=1)
    assert list(fast.state_dict()) == list(reference.state_dict())  # checkpoints of either load into the other
    fast.set_state_dict(reference.state_dict())
    out, expected = fast(x), reference(x)
    assert paddle.equal_all(out, expected)  # the forward, bit for bit
    out.sum().backward()
    expected.sum().backward()
    for mine, theirs in ((fast.weight, reference.weight), (fast.bias, reference.bias)):
        np.testing.assert_allclose(mine.grad.numpy(), theirs.grad.numpy(), rtol=1e-5, atol=1e-5)
    assert paddle.equal_all(conv2d(x, reference.weight, None, stride=2), paddle.nn.functional.conv2d(x, reference.weight, stride=2))
