import glob
import os

import pytest

from conftest import REPO
from utils.config import load_config, parse_overrides
from utils.errors import ConfigError

BASE = os.path.join(REPO, "conf", "base.yaml")


def test_base_config_is_blundells_mnist_setup():
    cfg = load_config(BASE)
    assert cfg.model.name == "2fc" and cfg.model.hidden_units == 1200
    assert cfg.data.input_size == 28 and cfg.data.std == [126.0] and cfg.data.valid_size == 10000
    assert cfg.model.layer_type == "bbb" and cfg.train.beta_type == "Blundell"
    assert cfg.model.prior.sigma == 0.1 and cfg.model.posterior.rho_init[0] == -5.0


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(REPO, "conf", "*.yaml"))))
def test_every_shipped_config_loads(path):
    cfg = load_config(path)
    assert cfg.run_name


def test_child_config_inherits_and_overrides():
    cfg = load_config(os.path.join(REPO, "conf", "cifar10_lenet_lrt.yaml"))
    assert cfg.model.name == "lenet" and cfg.model.layer_type == "lrt"
    assert cfg.data.name == "cifar10" and len(cfg.data.mean) == 3
    assert cfg.train.lr == load_config(BASE).train.lr  # not restated, inherited


def test_overrides_are_parsed_as_yaml():
    cfg = load_config(BASE, ["model.layer_type=lrt", "train.num_epochs=3", "train.lr=1e-3", "data.mean=[0.5]", "train.beta_type=0.1"])
    assert cfg.model.layer_type == "lrt" and cfg.train.num_epochs == 3
    assert cfg.train.lr == pytest.approx(1e-3) and cfg.data.mean == [0.5] and cfg.train.beta_type == 0.1
    assert parse_overrides(["a.b.c=1", "a.d=x"]) == {"a": {"b": {"c": 1}, "d": "x"}}


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.nmae=lenet", "unknown config key 'model.nmae' in the -o overrides; did you mean model.name"),
        ("model.name=resnet", "model.name must be one of 2fc, lenet, alexnet, 3conv3fc"),
        ("model.layer_type=mc", "model.layer_type must be one of bbb, lrt, freq"),
        ("train.num_epochs=three", "train.num_epochs must be an integer"),
        ("train.num_epochs=0", "train.num_epochs must be >= 1"),
        ("train.lr=-1", "train.lr must be >= "),
        ("model.prior.pi=1.5", "model.prior.pi must be between 0.0 and 1.0"),
        ("train.beta_type=Blundel", "train.beta_type must be one of Blundell, Standard, Soenderby or a number"),
        ("data.valid_size=1.5", "data.valid_size must be a whole count or a fraction"),
        ("data.hflip=maybe", "data.hflip must be true or false"),
        ("train=3", "train in the -o overrides must be a section of keys"),
        ("device=tpu", "device must be one of auto, cpu, gpu"),
        ("train.lr", "must look like section.key=value"),
    ],
)
def test_bad_values_name_the_key_and_the_allowed_values(override, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        load_config(BASE, [override])


def test_malformed_yaml_names_the_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  name: [2fc\n")
    with pytest.raises(ConfigError, match=r"malformed YAML in .*bad.yaml line \d+"):
        load_config(str(bad))


def test_missing_config_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(str(tmp_path / "nope.yaml"))


def test_unknown_key_in_a_file(tmp_path):
    child = tmp_path / "child.yaml"
    child.write_text(f"_base_: {BASE}\ntrain:\n  epochs: 3\n")
    with pytest.raises(ConfigError, match="unknown config key 'train.epochs'.*did you mean"):
        load_config(str(child))


def test_mixture_prior_needs_sigma2_below_sigma1():
    with pytest.raises(ConfigError, match="sigma2 must be smaller"):
        load_config(BASE, ["model.prior.type=mixture", "model.prior.sigma2=2.0"])
