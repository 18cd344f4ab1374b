"""The four nets of Shridhar et al. / Blundell et al., each built from BBB, LRT
or plain deterministic ('freq') layers."""
from __future__ import annotations

import functools
import logging
import os

import paddle.nn as nn

from model.layers import BBB, BBB_LRT
from model.layers.base import FlattenLayer, ModuleWrapper
from model.layers.conv import Conv2D
from model.layers.priors import build_prior
from model.likelihood import attach_gaussian
from utils.checkpoint import load_weights
from utils.errors import ConfigError
from utils.runtime import RunPaths


def _freq_linear(in_features, out_features, bias=True):
    return nn.Linear(in_features, out_features, bias_attr=None if bias else False)


def _freq_conv(in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True):
    return Conv2D(in_channels, out_channels, kernel_size, stride=stride, padding=padding, dilation=dilation, groups=groups, bias_attr=None if bias else False)


# model.layer_type -> the package of Bayesian layers (None: plain deterministic layers)
LAYER_TYPES = {"bbb": BBB, "lrt": BBB_LRT, "freq": None}


def layer_makers(model_cfg):
    """(Linear, Conv2d) constructors for the configured layer type."""
    package = LAYER_TYPES[model_cfg.layer_type]
    if package is None:
        return _freq_linear, _freq_conv
    posterior = dict(
        prior=build_prior(model_cfg.prior),
        mu_init=tuple(model_cfg.posterior.mu_init),
        rho_init=tuple(model_cfg.posterior.rho_init),
        init=model_cfg.posterior.init,
    )
    return functools.partial(package.BBBLinear, **posterior), functools.partial(package.BBBConv2d, **posterior)


def _activation(name: str) -> nn.Layer:
    return nn.ReLU() if name == "relu" else nn.Softplus()


def _out_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    return (size + 2 * padding - kernel) // stride + 1


class TwoFC(ModuleWrapper):
    """Blundell's MLP: flatten -> hidden -> act -> hidden -> act -> classes."""

    def __init__(self, linear, conv, act, in_channels, input_size, num_classes, hidden_units=1200):
        super().__init__()
        self.flatten = FlattenLayer()
        self.fc1 = linear(in_channels * input_size * input_size, hidden_units)
        self.act1 = act()
        self.fc2 = linear(hidden_units, hidden_units)
        self.act2 = act()
        self.fc3 = linear(hidden_units, num_classes)


class LeNet(ModuleWrapper):
    def __init__(self, linear, conv, act, in_channels, input_size, num_classes):
        super().__init__()
        size = _out_size(_out_size(_out_size(_out_size(input_size, 5), 2, 2), 5), 2, 2)
        _check_size(size, "lenet", input_size)
        self.conv1 = conv(in_channels, 6, 5)
        self.act1 = act()
        self.pool1 = nn.MaxPool2D(2, 2)
        self.conv2 = conv(6, 16, 5)
        self.act2 = act()
        self.pool2 = nn.MaxPool2D(2, 2)
        self.flatten = FlattenLayer()
        self.fc1 = linear(16 * size * size, 120)
        self.act3 = act()
        self.fc2 = linear(120, 84)
        self.act4 = act()
        self.fc3 = linear(84, num_classes)


class AlexNet(ModuleWrapper):
    def __init__(self, linear, conv, act, in_channels, input_size, num_classes):
        super().__init__()
        size = _out_size(_out_size(input_size, 11, 4, 5), 2, 2)
        size = _out_size(_out_size(size, 2, 2), 2, 2)  # conv2..conv5 keep the size; three 2x2 pools halve it
        _check_size(size, "alexnet", input_size)
        self.conv1 = conv(in_channels, 64, 11, stride=4, padding=5)
        self.act1 = act()
        self.pool1 = nn.MaxPool2D(2, 2)
        self.conv2 = conv(64, 192, 5, padding=2)
        self.act2 = act()
        self.pool2 = nn.MaxPool2D(2, 2)
        self.conv3 = conv(192, 384, 3, padding=1)
        self.act3 = act()
        self.conv4 = conv(384, 256, 3, padding=1)
        self.act4 = act()
        self.conv5 = conv(256, 128, 3, padding=1)
        self.act5 = act()
        self.pool3 = nn.MaxPool2D(2, 2)
        self.flatten = FlattenLayer()
        self.classifier = linear(128 * size * size, num_classes)


class ThreeConvThreeFC(ModuleWrapper):
    def __init__(self, linear, conv, act, in_channels, input_size, num_classes):
        super().__init__()
        size = input_size
        for padding in (2, 2, 1):
            size = _out_size(_out_size(size, 5, 1, padding), 3, 2)
        _check_size(size, "3conv3fc", input_size)
        self.conv1 = conv(in_channels, 32, 5, padding=2)
        self.act1 = act()
        self.pool1 = nn.MaxPool2D(3, 2)
        self.conv2 = conv(32, 64, 5, padding=2)
        self.act2 = act()
        self.pool2 = nn.MaxPool2D(3, 2)
        self.conv3 = conv(64, 128, 5, padding=1)
        self.act3 = act()
        self.pool3 = nn.MaxPool2D(3, 2)
        self.flatten = FlattenLayer()
        self.fc1 = linear(128 * size * size, 1000)
        self.act4 = act()
        self.fc2 = linear(1000, 1000)
        self.act5 = act()
        self.fc3 = linear(1000, num_classes)


def _check_size(size: int, name: str, input_size: int) -> None:
    if size < 1:
        raise ConfigError(f"data.input_size {input_size} is too small for {name}; use 32")


# model.name -> (the net's class, the model.* keys it takes besides the layers and the data's shape)
NETS = {
    "2fc": (TwoFC, ("hidden_units",)),
    "lenet": (LeNet, ()),
    "alexnet": (AlexNet, ()),
    "3conv3fc": (ThreeConvThreeFC, ()),
}


def build_model(model_cfg, in_channels: int, input_size: int, num_classes: int) -> ModuleWrapper:
    """The net named by model_cfg.name with model_cfg.layer_type layers."""
    if model_cfg.name not in NETS:
        raise ConfigError(f"unknown model '{model_cfg.name}'; choose {', '.join(NETS)}")
    linear, conv = layer_makers(model_cfg)
    act = functools.partial(_activation, model_cfg.activation)
    net, keys = NETS[model_cfg.name]
    return net(linear, conv, act, in_channels, input_size, num_classes, **{key: model_cfg[key] for key in keys})


def build_net(cfg, table=None) -> ModuleWrapper:
    """The configured net, sized for the configured data set, with its likelihood
    (model/likelihood.py). A tabular set's shapes come from `table` (data.load_table)
    where the caller has read it."""
    from data import dataset_info  # here, so that model/ can be used without the data package
    from data.tabular import is_tabular, load_tabular

    if not is_tabular(cfg.data.name):
        info = dataset_info(cfg.data.name)
        return build_model(cfg.model, info.channels, cfg.data.input_size, info.num_classes)
    table = table or load_tabular(cfg)
    # a row of F features is a 1x1 input with F channels to 2fc (the config allows no other net here)
    net = build_model(cfg.model, table.in_features, 1, table.num_outputs)
    if cfg.model.likelihood == "gaussian":
        attach_gaussian(net, cfg.model, table.target_std)
    return net


SHIPPED_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "checkpoints", "shipped")


def checkpoint_to_load(cfg, weights: str | None = None) -> str:
    """`weights`, else eval.weights, else the run's best checkpoint; where the run has
    none yet, the weights that ship for this run name (checkpoints/shipped/<run_name>.pdparams)."""
    if weights or cfg.eval.weights:
        return weights or cfg.eval.weights
    best = RunPaths(cfg).best
    shipped = os.path.join(SHIPPED_DIR, f"{cfg.run_name}.pdparams")
    if not os.path.isfile(best) and os.path.isfile(shipped):
        logging.getLogger("bbb").info("no trained run at %s yet: using the shipped weights %s", best, os.path.relpath(shipped))
        return shipped
    return best


def load_trained_net(cfg, weights: str | None = None, table=None) -> tuple[ModuleWrapper, str]:
    """The configured net (build_net) with trained weights from checkpoint_to_load(); and their path."""
    path = checkpoint_to_load(cfg, weights)
    net = build_net(cfg, table)
    load_weights(net, path, what=f"{cfg.model.name}/{cfg.model.layer_type}")
    return net, path
