"""The optimizers and learning-rate schedules a config can name (train.optimizer,
train.lr_schedule): each declared once here, in a registry that utils/config.py
reads for the allowed values.

The loss is per training sample (model/elbo.py), so a step size alpha of the
paper, whose objective sums the minibatch's log-likelihood (F_i = pi_i KL - sum
log p), is alpha * batch_size here for plain SGD: the sum is batch_size x the mean
(Blundell's 1e-3 at batch 128 is train.lr 0.128). Adam is invariant to that
scale, so its lr carries over as it is.
"""
from __future__ import annotations

from typing import Callable

import paddle


def _adam(lr, groups, cfg_train):
    return paddle.optimizer.Adam(learning_rate=lr, parameters=groups)


def _sgd(lr, groups, cfg_train):
    return paddle.optimizer.SGD(learning_rate=lr, parameters=groups)


def _momentum(lr, groups, cfg_train):
    return paddle.optimizer.Momentum(learning_rate=lr, momentum=cfg_train.momentum, parameters=groups)


# name -> builder(learning rate or schedule, parameter groups, cfg.train)
OPTIMIZERS: dict[str, Callable] = {"adam": _adam, "sgd": _sgd, "momentum": _momentum}


def _constant(lr: float) -> paddle.optimizer.lr.LRScheduler:
    # ExponentialDecay refuses gamma 1 and MultiStepDecay an empty list of milestones
    return paddle.optimizer.lr.LambdaDecay(learning_rate=lr, lr_lambda=lambda epoch: 1.0)


def _exponential(cfg_train):
    if cfg_train.lr_decay == 1.0:
        return _constant(cfg_train.lr)
    return paddle.optimizer.lr.ExponentialDecay(learning_rate=cfg_train.lr, gamma=cfg_train.lr_decay)


def _step(cfg_train):
    milestones = [int(m) for m in cfg_train.lr_milestones]
    if not milestones:
        return _constant(cfg_train.lr)
    return paddle.optimizer.lr.MultiStepDecay(learning_rate=cfg_train.lr, milestones=milestones, gamma=cfg_train.lr_factor)


# name -> builder(cfg.train); every schedule is stepped once per epoch.
SCHEDULES: dict[str, Callable] = {
    "exponential": _exponential,  # lr * lr_decay^epoch
    "step": _step,                # lr * lr_factor^(number of lr_milestones passed)
}


def parameter_groups(model: paddle.nn.Layer, weight_decay: float, rho_lr_scale: float) -> list[dict]:
    """The L2 weight decay applies to means and plain weights, never to rho
    (decay would pull sigma = softplus(rho) towards softplus(0) = 0.69). Every rho
    steps rho_lr_scale times as far as the rest (Paddle multiplies a group's
    learning_rate into the schedule's rate)."""
    rho = [p for name, p in model.named_parameters() if name.endswith("_rho")]
    rest = [p for name, p in model.named_parameters() if not name.endswith("_rho")]
    # None, not 0.0: Paddle turns 0.0 into an L2Decay(0) that still scales every
    # parameter and adds it to its gradient each step (two passes over the weights).
    groups = [{"params": rest, "weight_decay": weight_decay or None}]
    if rho:
        groups.append({"params": rho, "weight_decay": None, "learning_rate": rho_lr_scale})
    return groups


def make_schedule(cfg_train) -> paddle.optimizer.lr.LRScheduler:
    """The configured schedule, after train.warmup_epochs epochs whose rate climbs
    lr / (k + 1), 2 lr / (k + 1), ..., k lr / (k + 1) (plain SGD diverges in the
    first steps of a fresh net at rates it takes once the net has trained a
    little). Paddle's LinearWarmup starts the schedule's own count after the
    warm-up, so its milestones fall k epochs later."""
    schedule = SCHEDULES[cfg_train.lr_schedule](cfg_train)
    k = int(cfg_train.warmup_epochs)
    if k == 0:
        return schedule
    return paddle.optimizer.lr.LinearWarmup(learning_rate=schedule, warmup_steps=k, start_lr=cfg_train.lr / (k + 1), end_lr=cfg_train.lr)


def make_optimizer(model: paddle.nn.Layer, lr, cfg_train) -> paddle.optimizer.Optimizer:
    """The configured optimizer over `model`'s parameters; lr is a number or a schedule."""
    return OPTIMIZERS[cfg_train.optimizer](lr, parameter_groups(model, cfg_train.weight_decay, cfg_train.rho_lr_scale), cfg_train)
