"""The fused Gaussian posterior + KL operator (model/layers/fused.py) against the Paddle operators."""
import os
import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from model.layers import fused
from model.layers.priors import GaussianPrior, ScaleMixturePrior, normal_log_prob

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
    variance, kl = fused.gaussian_variance_kl(mu, rho, prior_mu, prior_sigma)
    want_sigma, want_kl = reference(mu, rho, prior_mu, prior_sigma)
    assert kl.shape == []
    np.testing.assert_allclose(variance.numpy(), want_sigma**2, rtol=1e-5)
    np.testing.assert_allclose(float(kl), want_kl, rtol=1e-5)


def paddle_path(mu, rho, prior_mu, prior_sigma):
    sigma = F.softplus(rho)
    return paddle.square(sigma), GaussianPrior(prior_mu, prior_sigma).kl(mu, sigma)


@pytest.mark.parametrize("prior_mu, prior_sigma", [(0.0, 0.1), (0.2, 1.5)])
def test_values_and_gradients_match_the_paddle_operators(op_available, prior_mu, prior_sigma):
    # rho >= -5 only: Paddle's float32 softplus, log(1 + exp(rho)), loses precision
    # below (relative error ~1e-5 at -5, 20 % at -15, sigma = 0 below -17).
    rho_values = [-5.0, 0.0, 5.0, 19.5, 20.5, 25.0]
    c = paddle.to_tensor(np.random.default_rng(1).normal(size=(40, 30)).astype("float32"))
    results = []
    for compute in (fused.gaussian_variance_kl, paddle_path):
        mu, rho = tensors(rho_values, seed=2, rho_range=(-5.0, 8.0))
        variance, kl = compute(mu, rho, prior_mu, prior_sigma)
        ((variance * c).sum() + 0.3 * kl).backward()
        results.append([variance.numpy(), float(kl), mu.grad.numpy(), rho.grad.numpy()])
    (variance, kl, grad_mu, grad_rho), (want_variance, want_kl, want_grad_mu, want_grad_rho) = results
    np.testing.assert_allclose(variance, want_variance, rtol=4e-5)
    np.testing.assert_allclose(kl, want_kl, rtol=1e-5)
    np.testing.assert_allclose(grad_mu, want_grad_mu, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(grad_rho, want_grad_rho, rtol=1e-4, atol=1e-6)


def test_gradient_of_the_kl_alone_and_of_the_variance_alone_on_two_threads(op_available, monkeypatch):
    monkeypatch.setattr(fused, "threads", lambda: 2)
    for use in ("kl", "variance"):
        grads = []
        for compute in (fused.gaussian_variance_kl, paddle_path):
            mu, rho = tensors([], seed=3, shape=(600, 500), rho_range=(-5.0, 8.0))  # large enough for two threads
            variance, kl = compute(mu, rho, 0.0, 0.1)
            (kl if use == "kl" else variance.sum()).backward()
            grads.append([rho.grad.numpy(), np.zeros([]) if mu.grad is None else mu.grad.numpy()])
        for got, want in zip(*grads):
            # atol: float32 rounding on a few of the 300,000 elements, against gradients up to 16
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-6)


def test_the_kl_is_the_same_number_whatever_the_thread_count(op_available, monkeypatch):
    # a seeded training run must repeat exactly on any number of cores
    mu, rho = tensors([], seed=4, shape=(1000, 300))
    kls = []
    for threads in (1, 2, 3, 1, 2):  # 3: more threads than this machine's cores
        monkeypatch.setattr(fused, "threads", lambda: threads)
        kls.append(float(fused.gaussian_variance_kl(mu, rho, 0.0, 0.1)[1]))
    assert len(set(kls)) == 1


def test_falls_back_outside_dynamic_mode_or_float32_or_when_disabled(op_available, monkeypatch):
    mu, rho = tensors([])
    assert fused.gaussian_variance_kl(mu.astype("float64"), rho.astype("float64"), 0.0, 0.1) is None
    monkeypatch.setattr(paddle, "in_dynamic_mode", lambda: False)
    assert fused.gaussian_variance_kl(mu, rho, 0.0, 0.1) is None
    monkeypatch.undo()
    monkeypatch.setattr(fused, "ENABLED", False)
    assert fused.gaussian_variance_kl(mu, rho, 0.0, 0.1) is None


def test_a_failed_build_falls_back_and_logs_once(monkeypatch, caplog):
    def broken():
        raise RuntimeError("no compiler")

    monkeypatch.setattr(fused, "ENABLED", True)
    monkeypatch.setattr(fused, "_build", broken)
    monkeypatch.setattr(fused, "_module", None)
    monkeypatch.setattr(fused, "_tried", False)
    mu, rho = tensors([])
    with caplog.at_level("INFO", logger="bbb"):
        assert fused.gaussian_variance_kl(mu, rho, 0.0, 0.1) is None
        assert fused.gaussian_variance_kl(mu, rho, 0.0, 0.1) is None
        assert fused.standard_normal(mu, 0, 0) is None  # the noise falls back to NumPy
    assert sum("C++ operators unavailable" in record.message for record in caplog.records) == 1


def mixture_reference(mu, rho, eps, pi, sigma1, sigma2):
    """sigma, the Monte-Carlo KL and its gradients (mu, rho) in float64 numpy."""
    mu, rho, eps = (t.numpy().astype("float64") for t in (mu, rho, eps))
    sigma = np.where(rho > 20, rho, np.log1p(np.exp(rho)))
    w = mu + sigma * eps
    logs = np.stack([np.log(pi / sigma1) - w**2 / (2 * sigma1**2), np.log((1 - pi) / sigma2) - w**2 / (2 * sigma2**2)])
    log_p = np.logaddexp(logs[0], logs[1])
    kl = np.sum(-np.log(sigma) - eps**2 / 2 - log_p)
    wide = np.exp(logs[0] - log_p)  # the wide component's responsibility
    d_w = w * (wide / sigma1**2 + (1 - wide) / sigma2**2)
    return sigma, kl, d_w, (d_w * eps - 1 / sigma) / (1 + np.exp(-rho))


def mixture_tensors(seed, shape=(300, 200)):
    mu, rho = tensors([-30.0, -20.5, 19.5, 25.0], seed=seed, shape=shape, rho_range=(-9.0, 3.0))
    mu = paddle.to_tensor(mu.numpy() * 0.1)  # weights near 0, where the narrow component matters
    mu.stop_gradient = False
    return mu, rho, paddle.to_tensor(np.random.default_rng(seed + 1).normal(size=shape).astype("float32"))


@pytest.mark.parametrize("pi, sigma1, sigma2", [(0.5, 1.0, np.exp(-7)), (0.25, np.exp(-1), np.exp(-6))])
def test_mixture_kl_and_its_gradients_match_float64(op_available, monkeypatch, pi, sigma1, sigma2):
    monkeypatch.setattr(fused, "threads", lambda: 2)
    mu, rho, eps = mixture_tensors(5, shape=(600, 500))  # large enough for two threads
    variance, kl = fused.mixture_variance_kl(mu, rho, eps, pi, sigma1, sigma2)
    kl.backward()
    want_sigma, want_kl, want_grad_mu, want_grad_rho = mixture_reference(mu, rho, eps, pi, sigma1, sigma2)
    np.testing.assert_allclose(variance.numpy(), want_sigma**2, rtol=1e-5)
    np.testing.assert_allclose(float(kl), want_kl, rtol=1e-5)
    # w = mu + sigma eps is rounded to float32 before the prior sees it, and the
    # narrow component's gradient w / sigma2^2 magnifies that: compare on the scale
    # of the largest gradient (the Paddle operators do no better, see below).
    for got, want in ((mu.grad.numpy(), want_grad_mu), (rho.grad.numpy(), want_grad_rho)):
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-5 * np.abs(want).max())


def test_mixture_values_and_gradients_match_the_paddle_operators(op_available):
    prior = ScaleMixturePrior(0.5, 1.0, float(np.exp(-7)))
    c = paddle.to_tensor(np.random.default_rng(6).normal(size=(300, 200)).astype("float32"))
    results = []
    for use_fused in (True, False):
        mu, rho, eps = mixture_tensors(7)
        rho = paddle.to_tensor(np.clip(rho.numpy(), -5.0, None))  # Paddle's softplus is exact from -5 up only
        rho.stop_gradient = False
        if use_fused:
            variance, kl = fused.mixture_variance_kl(mu, rho, eps, prior.pi, prior.sigma1, prior.sigma2)
        else:
            sigma = F.softplus(rho)
            w = mu + sigma * eps
            variance, kl = paddle.square(sigma), (normal_log_prob(w, mu, sigma) - prior.log_prob(w)).sum()
        ((variance * c).sum() + 0.3 * kl).backward()
        results.append([variance.numpy(), float(kl), mu.grad.numpy(), rho.grad.numpy()])
    for got, want in zip(*results):
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4 * np.abs(want).max())


@pytest.mark.parametrize("prior", [GaussianPrior(0.05, 0.1), ScaleMixturePrior(0.5, 1.0, float(np.exp(-7)))], ids=["gaussian", "mixture"])
def test_a_fused_draw_matches_mu_plus_sigma_eps_and_its_kl_through_paddle(op_available, prior):
    # what BBB's forward uses: the draw and its KL term, with gradients through both
    c = paddle.to_tensor(np.random.default_rng(10).normal(size=(300, 200)).astype("float32"))
    results = []
    for use_fused in (True, False):
        mu, rho, eps = mixture_tensors(11)
        rho = paddle.to_tensor(np.clip(rho.numpy(), -5.0, None))  # where Paddle's softplus is exact
        rho.stop_gradient = False
        if use_fused:
            w, kl = prior.fused_sample_kl(mu, rho, eps)
        else:
            sigma = F.softplus(rho)
            w = mu + sigma * eps
            kl = prior.kl(mu, sigma) if prior.closed_form_kl else (normal_log_prob(w, mu, sigma) - prior.log_prob(w)).sum()
        ((w * c).sum() + 0.3 * kl).backward()
        results.append([w.numpy(), float(kl), mu.grad.numpy(), rho.grad.numpy()])
    for got, want in zip(*results):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_mixture_kl_is_the_same_number_whatever_the_thread_count(op_available, monkeypatch):
    mu, rho, eps = mixture_tensors(8, shape=(1000, 300))
    kls = []
    for threads in (1, 2, 1, 2):
        monkeypatch.setattr(fused, "threads", lambda: threads)
        kls.append(float(fused.mixture_variance_kl(mu, rho, eps, 0.5, 1.0, 0.002)[1]))
    assert len(set(kls)) == 1


def test_mixture_falls_back_for_a_one_component_prior(op_available):
    mu, rho, eps = mixture_tensors(9, shape=(4, 3))
    assert fused.mixture_variance_kl(mu, rho, eps, 1.0, 1.0, 0.002) is None
    assert fused.mixture_variance_kl(mu, rho, eps, 0.0, 1.0, 0.002) is None


def train_step_results(layer_type, use_fused, monkeypatch, sample=True, prior="gaussian"):
    from model.nets import build_net
    from utils.config import load_config
    from utils.runtime import seed_everything

    monkeypatch.setattr(fused, "ENABLED", use_fused)
    # NumPy's noise both times, composed by Paddle: only the posterior's path differs
    monkeypatch.setattr(fused, "standard_normal", lambda *args: None)
    monkeypatch.setattr(fused, "normal_sample", lambda *args: None)
    cfg = load_config("conf/bayescnn_base.yaml", [f"model.layer_type={layer_type}", "model.hidden_units=64", "model.prior.mu=0.05", f"model.prior.type={prior}"])
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
@pytest.mark.parametrize("prior", ["gaussian", "mixture"])
def test_a_training_step_is_the_same_with_and_without_the_fused_operator(op_available, monkeypatch, layer_type, sample, prior):
    # with the mixture prior the same seed gives the same weight draw either way
    loss, kl, grads = train_step_results(layer_type, True, monkeypatch, sample, prior)
    want_loss, want_kl, want_grads = train_step_results(layer_type, False, monkeypatch, sample, prior)
    np.testing.assert_allclose(kl, want_kl, rtol=1e-5)
    np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
    assert grads.keys() == want_grads.keys()
    for name in grads:
        # the mixture's float32 rounding of w, magnified by 1 / sigma2^2, as above
        atol = 1e-6 if prior == "gaussian" else 1e-4 * np.abs(want_grads[name]).max()
        np.testing.assert_allclose(grads[name], want_grads[name], rtol=1e-4, atol=atol, err_msg=name)


def test_layer_kl_without_a_forward_uses_the_fused_operator(op_available, monkeypatch):
    from model.layers.BBB import BBBLinear

    calls = []
    original = fused.gaussian_variance_kl
    monkeypatch.setattr("model.layers.priors.gaussian_variance_kl", lambda *a: calls.append(1) or original(*a))
    layer = BBBLinear(20, 10)
    kl = layer.kl()
    assert calls == [1, 1]  # weight and bias
    monkeypatch.setattr(fused, "ENABLED", False)
    np.testing.assert_allclose(float(kl), float(layer.kl()), rtol=1e-5)


def test_the_build_folder_is_keyed_by_the_environment(monkeypatch):
    first = fused.build_directory()
    monkeypatch.setattr(fused.sys, "prefix", "/some/other/venv")
    assert fused.build_directory() != first
    assert os.path.basename(first).startswith(f"paddle-{paddle.__version__}-")


def test_the_draw_and_the_variance_without_a_kl_are_those_of_the_operators_with_one(op_available):
    mu, rho = tensors(EXTREME_RHO)
    eps = paddle.to_tensor(np.random.default_rng(3).normal(size=mu.shape).astype("float32"))
    assert fused.posterior_sample(mu, rho, eps) is None and fused.posterior_variance(mu, rho) is None  # gradients wanted: Paddle's path
    with paddle.no_grad():  # evaluation
        np.testing.assert_array_equal(fused.posterior_sample(mu, rho, eps).numpy(), fused.gaussian_sample_kl(mu, rho, eps, 0.0, 0.1)[0].numpy())
        np.testing.assert_array_equal(fused.posterior_variance(mu, rho).numpy(), fused.gaussian_variance_kl(mu, rho, 0.0, 0.1)[0].numpy())
