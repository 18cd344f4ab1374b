import math

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from model.elbo import elbo_loss, kl_weight
from model.mc import log_mean_exp, mc_log_probs, mc_log_probs_and_kl
from model.layers import BBB
from model.layers.base import ModuleWrapper
from utils.runtime import seed_everything


@pytest.mark.parametrize("m", [1, 10, 500, 2000])
def test_blundell_betas_sum_to_one_without_overflow(m):
    betas = [kl_weight("Blundell", i, m, 0, 10) for i in range(m)]
    assert all(math.isfinite(b) and b >= 0 for b in betas)
    assert math.fsum(betas) == pytest.approx(1.0, abs=1e-12)
    assert betas == sorted(betas, reverse=True)  # the first minibatches carry most of the KL


def test_blundell_beta_formula_for_small_m():
    m = 3
    assert [kl_weight("Blundell", i, m, 0, 1) for i in range(m)] == pytest.approx([4 / 7, 2 / 7, 1 / 7])


def test_standard_soenderby_and_constant_betas():
    assert kl_weight("Standard", 5, 40, 3, 10) == pytest.approx(1 / 40)
    assert kl_weight("Soenderby", 0, 40, 0, 100) == 0.0  # no KL in the first epoch
    assert kl_weight("Soenderby", 0, 40, 10, 100) == pytest.approx(10 / 25 / 40)
    assert kl_weight("Soenderby", 0, 40, 99, 100) == pytest.approx(1 / 40)
    assert kl_weight(0.5, 7, 40, 0, 1) == pytest.approx(0.5 / 40)
    assert kl_weight(1, 7, 40, 0, 1) == pytest.approx(1 / 40)  # an integer beta is not truncated to 0


def test_constant_beta_of_one_is_the_negative_elbo_per_sample():
    paddle.seed(0)
    n_train, m = 600, 6
    log_probs = F.log_softmax(paddle.randn([100, 10]), axis=-1)
    labels = paddle.randint(0, 10, [100])
    kl = paddle.to_tensor(1234.5)
    loss = elbo_loss(log_probs, labels, kl, kl_weight(1.0, 2, m, 0, 1), m, n_train)
    nll = -float(paddle.take_along_axis(log_probs, labels[:, None], axis=1).mean())
    assert float(loss) == pytest.approx(nll + 1234.5 / n_train, rel=1e-6)


def test_an_epoch_of_blundell_losses_averages_to_the_negative_elbo_per_sample():
    m, n_train = 8, 800
    kl = 5000.0
    log_probs = paddle.full([100, 2], math.log(0.5))
    labels = paddle.zeros([100], dtype="int64")
    losses = [float(elbo_loss(log_probs, labels, paddle.to_tensor(kl), kl_weight("Blundell", i, m, 0, 1), m, n_train)) for i in range(m)]
    assert np.mean(losses) == pytest.approx(math.log(2) + kl / n_train, rel=1e-6)


def test_log_mean_exp_is_stable():
    x = paddle.to_tensor([[-1000.0, 0.0], [-1000.0, math.log(3.0)]])
    np.testing.assert_allclose(log_mean_exp(x, axis=0).numpy(), [-1000.0, math.log(2.0)], rtol=1e-6)


def test_ensemble_averages_probabilities_and_kl_over_samples():
    seed_everything(3)
    net = ModuleWrapper()
    net.fc = BBB.BBBLinear(4, 3, rho_init=(-1.0, 0.1))
    x = paddle.randn([2, 4])
    seed_everything(7)
    log_probs, kl = mc_log_probs_and_kl(net, x, 5)
    seed_everything(7)
    passes = [net(x) for _ in range(5)]
    probs = np.mean([F.softmax(logits, axis=-1).numpy() for logits, _ in passes], axis=0)
    np.testing.assert_allclose(np.exp(log_probs.numpy()), probs, rtol=1e-5)
    assert float(kl) == pytest.approx(np.mean([float(k) for _, k in passes]), rel=1e-6)
    seed_everything(7)
    np.testing.assert_allclose(mc_log_probs(net, x, 5).numpy(), log_probs.numpy(), rtol=1e-5, atol=1e-6)  # the same passes, no KL


def test_elbo_average_gives_the_mean_of_the_passes_nlls_and_their_gradients():
    """train.ens_objective elbo: the loss of T passes is the mean of the passes' own
    losses, so one step follows the average of their gradients (Blundell et al.)."""
    seed_everything(3)
    net = ModuleWrapper()
    net.fc = BBB.BBBLinear(4, 3, rho_init=(-1.0, 0.1))
    x, y = paddle.randn([2, 4]), paddle.to_tensor([0, 2])
    seed_everything(7)
    log_probs, _ = mc_log_probs_and_kl(net, x, 3, average="elbo")
    loss = F.nll_loss(log_probs, y)
    loss.backward()
    grad = net.fc.weight_mu.grad.numpy().copy()
    net.clear_gradients()
    seed_everything(7)
    losses = [F.nll_loss(F.log_softmax(net(x)[0], axis=-1), y) for _ in range(3)]
    assert float(loss) == pytest.approx(np.mean([float(l) for l in losses]), rel=1e-6)
    (paddle.add_n(losses) / 3).backward()
    np.testing.assert_allclose(grad, net.fc.weight_mu.grad.numpy(), rtol=1e-5, atol=1e-7)


def test_elbo_and_predictive_agree_for_one_pass():
    seed_everything(3)
    net = ModuleWrapper()
    net.fc = BBB.BBBLinear(4, 3)
    x = paddle.randn([2, 4])
    seed_everything(5)
    a, _ = mc_log_probs_and_kl(net, x, 1, average="elbo")
    seed_everything(5)
    b, _ = mc_log_probs_and_kl(net, x, 1, average="predictive")
    np.testing.assert_array_equal(a.numpy(), b.numpy())
