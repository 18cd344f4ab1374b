"""The optimizers and schedules of model/optimizers.py, and the step-size convention."""
import numpy as np
import paddle
import paddle.nn.functional as F

from model.elbo import elbo_loss
from model.layers import BBB
from model.layers.base import ModuleWrapper
from model.optimizers import OPTIMIZERS, SCHEDULES, make_optimizer, make_schedule


def _net(seed=0):
    paddle.seed(seed)
    net = ModuleWrapper()
    net.fc = BBB.BBBLinear(6, 3)
    net.set_sampling(False)  # mean weights: both losses see the same outputs
    return net


def _rates(schedule, epochs: int) -> list[float]:
    """The rate of each of the first `epochs` epochs, stepping once per epoch as train.py does."""
    rates = []
    for _ in range(epochs):
        rates.append(schedule.get_lr())
        schedule.step()
    return rates


def test_weight_decay_never_touches_rho(small_cfg):
    net = _net()
    rho_before, mu_before = net.fc.weight_rho.numpy().copy(), net.fc.weight_mu.numpy().copy()
    optimizer = make_optimizer(net, 0.1, small_cfg("train.weight_decay=1.0").train)
    (0.0 * sum(p.sum() for p in net.parameters())).backward()  # zero gradients: only the decay acts
    optimizer.step()
    np.testing.assert_array_equal(net.fc.weight_rho.numpy(), rho_before)
    assert not np.allclose(net.fc.weight_mu.numpy(), mu_before)


def test_rho_lr_scale_multiplies_the_step_of_rho_alone(small_cfg):
    steps = {}
    for scale in (1.0, 10.0):
        net = _net()
        before = {name: p.numpy().copy() for name, p in net.named_parameters()}
        optimizer = make_optimizer(net, 0.1, small_cfg("train.optimizer=sgd", f"train.rho_lr_scale={scale}").train)
        out, kl = net(paddle.ones([4, 6]))  # mean weights and the closed-form KL: both runs see the same gradients
        (out.square().mean() + kl).backward()
        optimizer.step()
        steps[scale] = {name: p.numpy() - before[name] for name, p in net.named_parameters()}
    for name, step in steps[10.0].items():
        factor = 10.0 if name.endswith("_rho") else 1.0
        np.testing.assert_allclose(step, factor * steps[1.0][name], rtol=1e-4, atol=1e-5, err_msg=name)  # float32 differences of values near 5
    assert np.abs(steps[1.0]["fc.weight_rho"]).max() > 1e-2


def test_no_weight_decay_adds_no_regularizer_to_any_parameter(small_cfg):
    # Paddle runs an L2Decay(0.0) anyway: a scale and an add per parameter each step
    net = _net()
    make_optimizer(net, 0.1, small_cfg("train.weight_decay=0.0").train)
    assert all(p.regularizer is None for p in net.parameters())
    make_optimizer(net, 0.1, small_cfg("train.weight_decay=0.5").train)
    assert net.fc.weight_mu.regularizer is not None and net.fc.weight_rho.regularizer is None


def test_sgd_at_lr_alpha_times_batch_on_the_mean_is_the_papers_step_alpha_on_the_sum(small_cfg):
    """Blundell's F_i = pi_i KL - sum_b log p(y_b | x_b, w); this project's loss is F_i / B."""
    batch, num_batches, alpha, pi_i = 16, 10, 1e-3, 0.25
    x, y = paddle.randn([batch, 6]), paddle.randint(0, 3, [batch])
    ours, papers = _net(), _net()
    # ours: train.lr = alpha * B on the per-sample loss
    log_probs, kl = ours(x)
    loss = elbo_loss(F.log_softmax(log_probs, -1), y, kl, pi_i, num_batches, batch * num_batches)
    loss.backward()
    make_optimizer(ours, alpha * batch, small_cfg("train.optimizer=sgd").train).step()
    # the paper's: plain mu <- mu - alpha * grad F_i, written out by hand
    log_probs, kl = papers(x)
    summed = pi_i * kl - (-F.nll_loss(F.log_softmax(log_probs, -1), y, reduction="sum"))
    summed.backward()
    for (name, p_ours), p_paper in zip(ours.named_parameters(), papers.parameters()):
        np.testing.assert_allclose(p_ours.numpy(), p_paper.numpy() - alpha * p_paper.grad.numpy(), rtol=1e-5, atol=1e-7, err_msg=name)


def test_momentum_remembers_the_previous_step(small_cfg):
    net = _net()
    optimizer = make_optimizer(net, 0.1, small_cfg("train.optimizer=momentum", "train.momentum=0.5").train)
    before = net.fc.bias_mu.numpy().copy()
    for _ in range(2):
        net.fc.bias_mu.sum().backward()  # gradient 1 for every bias, every step
        optimizer.step()
        optimizer.clear_grad()
    np.testing.assert_allclose(net.fc.bias_mu.numpy(), before - 0.1 * (1 + 1.5), rtol=1e-6)


def test_step_schedule_multiplies_by_the_factor_after_each_milestone(small_cfg):
    schedule = make_schedule(small_cfg("train.lr=0.1", "train.lr_schedule=step", "train.lr_milestones=[2,4]", "train.lr_factor=0.1").train)
    np.testing.assert_allclose(_rates(schedule, 6), [0.1, 0.1, 0.01, 0.01, 0.001, 0.001])


def test_warmup_climbs_to_lr_then_the_schedule_counts_its_milestones_from_there(small_cfg):
    cfg = small_cfg("train.lr=0.3", "train.lr_schedule=step", "train.lr_milestones=[2]", "train.lr_factor=0.1", "train.warmup_epochs=2").train
    np.testing.assert_allclose(_rates(make_schedule(cfg), 6), [0.1, 0.2, 0.3, 0.3, 0.03, 0.03])


def test_step_schedule_without_milestones_and_decay_1_are_constant_and_exponential_decays(small_cfg):
    constant = make_schedule(small_cfg("train.lr_schedule=step").train)
    no_decay = make_schedule(small_cfg("train.lr_decay=1.0").train)
    decaying = make_schedule(small_cfg("train.lr=1.0", "train.lr_decay=0.5").train)
    for _ in range(3):
        for schedule in (constant, no_decay, decaying):
            schedule.step()
    assert constant.get_lr() == no_decay.get_lr() == small_cfg().train.lr and decaying.get_lr() == 0.125


def test_every_registered_optimizer_and_schedule_trains_a_step(small_cfg):
    for name in OPTIMIZERS:
        for schedule_name in SCHEDULES:
            cfg = small_cfg(f"train.optimizer={name}", f"train.lr_schedule={schedule_name}").train
            net = _net()
            optimizer = make_optimizer(net, make_schedule(cfg), cfg)
            before = net.fc.weight_mu.numpy().copy()
            net.fc.weight_mu.sum().backward()
            optimizer.step()
            assert not np.allclose(net.fc.weight_mu.numpy(), before), (name, schedule_name)


def test_uniform_posterior_init_draws_inside_its_range(small_cfg):
    from model.nets import build_net

    net = build_net(small_cfg("model.posterior.init=uniform", "model.posterior.mu_init=[-0.03,0.03]", "model.posterior.rho_init=[-3.5,-3.0]"))
    mu, rho = net.fc1.weight_mu.numpy(), net.fc1.weight_rho.numpy()
    assert -0.03 <= mu.min() < -0.029 and 0.029 < mu.max() <= 0.03
    assert -3.5 <= rho.min() and rho.max() <= -3.0 and abs(rho.mean() + 3.25) < 0.01
