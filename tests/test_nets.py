import paddle
import pytest

from model.nets import LAYER_TYPES, NETS, build_model, build_net
from utils.config import load_config
from utils.errors import ConfigError
from conftest import REPO

SHAPES = [(1, 28), (1, 32), (3, 32)]  # MNIST as is, MNIST resized, CIFAR


def _model_cfg(name, layer_type):
    return load_config(f"{REPO}/conf/bayescnn_base.yaml", [f"model.name={name}", f"model.layer_type={layer_type}", "model.hidden_units=64"]).model


@pytest.mark.parametrize("layer_type", list(LAYER_TYPES))
@pytest.mark.parametrize("name", list(NETS))
@pytest.mark.parametrize("channels, size", SHAPES)
def test_every_net_gives_logits_and_a_kl(name, layer_type, channels, size):
    if name == "alexnet" and size == 28:
        pytest.skip("alexnet needs 32x32 input (checked below)")
    net = build_model(_model_cfg(name, layer_type), channels, size, num_classes=7)
    logits, kl = net(paddle.randn([3, channels, size, size]))
    assert list(logits.shape) == [3, 7]
    if layer_type == "freq":
        assert float(kl) == 0 and not net.is_bayesian
    else:
        assert float(kl) > 0 and net.is_bayesian


def test_2fc_1200_has_blundells_2_4_million_weights():
    net = build_model(load_config(f"{REPO}/conf/bayescnn_base.yaml", ["model.layer_type=freq"]).model, 1, 28, 10)
    weights = sum(int(p.size) for p in net.parameters() if len(p.shape) == 2)
    biases = sum(int(p.size) for p in net.parameters() if len(p.shape) == 1)
    assert (weights, biases) == (2_392_800, 2_410)


def test_reference_flatten_sizes():
    lenet = build_model(_model_cfg("lenet", "bbb"), 1, 32, 10)
    alexnet = build_model(_model_cfg("alexnet", "bbb"), 3, 32, 10)
    conv33 = build_model(_model_cfg("3conv3fc", "bbb"), 3, 32, 10)
    assert lenet.fc1.weight_mu.shape[0] == 400
    assert alexnet.classifier.weight_mu.shape[0] == 128
    assert conv33.fc1.weight_mu.shape[0] == 512


def test_too_small_input_is_a_config_error():
    with pytest.raises(ConfigError, match="too small for alexnet"):
        build_model(_model_cfg("alexnet", "bbb"), 1, 28, 10)


def test_build_net_sizes_the_net_for_the_data_set():
    cfg = load_config(f"{REPO}/conf/cifar100_lenet_bbb.yaml")
    logits, _ = build_net(cfg)(paddle.randn([2, 3, 32, 32]))
    assert list(logits.shape) == [2, 100]


def test_softplus_activation():
    cfg = load_config(f"{REPO}/conf/bayescnn_base.yaml", ["model.activation=softplus", "model.hidden_units=8"]).model
    net = build_model(cfg, 1, 28, 10)
    assert isinstance(net.act1, paddle.nn.Softplus)


def test_a_net_added_to_the_registry_is_a_choice_of_every_mode(monkeypatch, small_cfg):
    """The README's 'Extending' example: the class and one NETS entry, nothing else."""
    from model.layers.base import FlattenLayer, ModuleWrapper
    from model.nets import NETS

    class OneFC(ModuleWrapper):
        def __init__(self, linear, conv, act, in_channels, input_size, num_classes, hidden_units=1200):
            super().__init__()
            self.flatten = FlattenLayer()
            self.fc1 = linear(in_channels * input_size * input_size, num_classes)

    monkeypatch.setitem(NETS, "1fc", (OneFC, ()))
    net = build_net(small_cfg("model.name=1fc"))
    logits, kl = net(paddle.randn([2, 1, 28, 28]))
    assert logits.shape == [2, 10] and float(kl) > 0
