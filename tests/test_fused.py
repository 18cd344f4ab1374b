"""The fused Gaussian posterior + KL operator (model/layers/fused.py) against the Paddle operators."""
import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from model.layers import fused
from model.layers.priors import GaussianPrior

EXTREME_RHO = [-30.0, -5.0, 0.0, 5.0, 25.0]


@pytest.fixture
def op_available(monkeypatch):
    """The fused operator, enabled even where BBB_FUSED_KL=0 runs the rest of the suite."""
    monkeypatch.setattr(fused, "ENABLED", True)
    if fused._op() is None:
        pytest.skip("the fused operator could not be built here")


def tensors(rho_values, seed=0, shape=(40, 30), rho_range=(-9.0, 8.0)):
    rng = np.random.default_rng(seed)
    mu = rng.normal(0.3, 0.2, shape).astype("float32")
    rho = rng.uniform(*rho_range, shape).astype("float32")
    rho.reshape(-1)[: len(rho_values)] = rho_values
    mu, rho = paddle.to_tensor(mu), paddle.to_tensor(rho)
    mu.stop_gradient = rho.stop_gradient = False
    return mu, rho


def reference(mu, rho, prior_mu, prior_sigma):
    """softplus and the KL in float64 numpy, log1p(exp) where Paddle's float32 softplus rounds to 0."""
    mu, rho = mu.numpy().astype("float64"), rho.numpy().astype("float64")
    sigma = np.where(rho > 20, rho, np.log1p(np.exp(rho)))
    kl = np.sum(np.log(prior_sigma / sigma) + (sigma**2 + (mu - prior_mu) ** 2) / (2 * prior_sigma**2) - 0.5)
    return sigma, kl


@pytest.mark.parametrize("prior_mu, prior_sigma", [(0.0, 0.1), (0.2, 1.5)])
def test_sigma_and_kl_match_float64_even_for_extreme_rho(op_available, prior_mu, prior_sigma):
    mu, rho = tensors(EXTREME_RHO)
    sigma, kl = fused.gaussian_posterior_kl(mu, rho, prior_mu, prior_sigma)
    want_sigma, want_kl = reference(mu, rho, prior_mu, prior_sigma)
    assert kl.shape == []
    np.testing.assert_allclose(sigma.numpy(), want_sigma, rtol=1e-5)
    np.testing.assert_allclose(float(kl), want_kl, rtol=1e-5)


def paddle_path(mu, rho, prior_mu, prior_sigma):
    sigma = F.softplus(rho)
    return sigma, GaussianPrior(prior_mu, prior_sigma).kl(mu, sigma)


@pytest.mark.parametrize("prior_mu, prior_sigma", [(0.0, 0.1), (0.2, 1.5)])
def test_values_and_gradients_match_the_paddle_operators(op_available, prior_mu, prior_sigma):
    # rho >= -5 only: Paddle's float32 softplus, log(1 + exp(rho)), loses precision
    # below (relative error ~1e-5 at -5, 20 % at -15, sigma = 0 below -17).
    rho_values = [-5.0, 0.0, 5.0, 19.5, 20.5, 25.0]
    c = paddle.to_tensor(np.random.default_rng(1).normal(size=(40, 30)).astype("float32"))
    results = []
    for compute in (fused.gaussian_posterior_kl, paddle_path):
        mu, rho = tensors(rho_values, seed=2, rho_range=(-5.0, 8.0))
        sigma, kl = compute(mu, rho, prior_mu, prior_sigma)
        ((sigma * c).sum() + 0.3 * kl).backward()
        results.append([sigma.numpy(), float(kl), mu.grad.numpy(), rho.grad.numpy()])
    (sigma, kl, grad_mu, grad_rho), (want_sigma, want_kl, want_grad_mu, want_grad_rho) = results
    np.testing.assert_allclose(sigma, want_sigma, rtol=2e-5)
    np.testing.assert_allclose(kl, want_kl, rtol=1e-5)
    np.testing.assert_allclose(grad_mu, want_grad_mu, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(grad_rho, want_grad_rho, rtol=1e-4, atol=1e-6)


def test_gradient_of_the_kl_alone_and_of_sigma_alone_on_two_threads(op_available, monkeypatch):
    monkeypatch.setattr(fused, "THREADS", 2)
    for use in ("kl", "sigma"):
        grads = []
        for compute in (fused.gaussian_posterior_kl, paddle_path):
            mu, rho = tensors([], seed=3, shape=(300, 200), rho_range=(-5.0, 8.0))
            sigma, kl = compute(mu, rho, 0.0, 0.1)
            (kl if use == "kl" else sigma.sum()).backward()
            grads.append([rho.grad.numpy(), np.zeros([]) if mu.grad is None else mu.grad.numpy()])
        for got, want in zip(*grads):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_the_kl_is_the_same_number_whatever_the_thread_count(op_available, monkeypatch):
    # a seeded training run must repeat exactly on any number of cores
    mu, rho = tensors([], seed=4, shape=(1000, 300))
    kls = []
    for threads in (1, 2, 1, 2):
        monkeypatch.setattr(fused, "THREADS", threads)
        kls.append(float(fused.gaussian_posterior_kl(mu, rho, 0.0, 0.1)[1]))
    assert len(set(kls)) == 1


def test_falls_back_outside_dynamic_mode_or_float32_or_when_disabled(op_available, monkeypatch):
    mu, rho = tensors([])
    assert fused.gaussian_posterior_kl(mu.astype("float64"), rho.astype("float64"), 0.0, 0.1) is None
    monkeypatch.setattr(paddle, "in_dynamic_mode", lambda: False)
    assert fused.gaussian_posterior_kl(mu, rho, 0.0, 0.1) is None
    monkeypatch.undo()
    monkeypatch.setattr(fused, "ENABLED", False)
    assert fused.gaussian_posterior_kl(mu, rho, 0.0, 0.1) is None


def test_a_failed_build_falls_back_and_logs_once(monkeypatch, caplog):
    def broken():
        raise RuntimeError("no compiler")

    monkeypatch.setattr(fused, "ENABLED", True)
    monkeypatch.setattr(fused, "_build", broken)
    monkeypatch.setattr(fused, "_module", None)
    monkeypatch.setattr(fused, "_tried", False)
    mu, rho = tensors([])
    with caplog.at_level("INFO", logger="bbb"):
        assert fused.gaussian_posterior_kl(mu, rho, 0.0, 0.1) is None
        assert fused.gaussian_posterior_kl(mu, rho, 0.0, 0.1) is None
    assert sum("fused Gaussian KL unavailable" in record.message for record in caplog.records) == 1


def train_step_results(layer_type, use_fused, monkeypatch, sample=True):
    from model.nets import build_net
    from utils.config import load_config
    from utils.runtime import seed_everything

    monkeypatch.setattr(fused, "ENABLED", use_fused)
    cfg = load_config("conf/base.yaml", [f"model.layer_type={layer_type}", "model.hidden_units=64", "model.prior.mu=0.05"])
    seed_everything(0)
    net = build_net(cfg)
    net.set_sampling(sample)
    x = paddle.randn([16, 1, 28, 28])
    logits, kl = net(x)
    loss = F.cross_entropy(logits, paddle.arange(16) % 10) + kl / 1000
    loss.backward()
    return float(loss), float(kl), {name: p.grad.numpy() for name, p in net.named_parameters()}


@pytest.mark.parametrize("layer_type", ["bbb", "lrt"])
@pytest.mark.parametrize("sample", [True, False])
def test_a_training_step_is_the_same_with_and_without_the_fused_operator(op_available, monkeypatch, layer_type, sample):
    loss, kl, grads = train_step_results(layer_type, True, monkeypatch, sample)
    want_loss, want_kl, want_grads = train_step_results(layer_type, False, monkeypatch, sample)
    np.testing.assert_allclose(kl, want_kl, rtol=1e-5)
    np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
    assert grads.keys() == want_grads.keys()
    for name in grads:
        np.testing.assert_allclose(grads[name], want_grads[name], rtol=1e-4, atol=1e-6, err_msg=name)


def test_layer_kl_loss_without_a_forward_uses_the_fused_operator(op_available, monkeypatch):
    from model.layers.BBB import BBBLinear

    calls = []
    original = fused.gaussian_posterior_kl
    monkeypatch.setattr("model.layers.base.gaussian_posterior_kl", lambda *a: calls.append(1) or original(*a))
    layer = BBBLinear(20, 10)
    kl = layer.kl_loss()
    assert calls == [1, 1]  # weight and bias
    monkeypatch.setattr(fused, "ENABLED", False)
    np.testing.assert_allclose(float(kl), float(layer.kl_loss()), rtol=1e-5)
