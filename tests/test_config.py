import glob
import os
import re

import pytest

from conftest import REPO
from utils.config import BASE_CONFIG, load_config, parse_overrides
from utils.errors import ConfigError

BASE = os.path.join(REPO, "conf", "bayescnn_base.yaml")


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
        ("data.valid_size=1.5", "data.valid_size must be a count of images (an integer such as 10000, or 0 for none) or a fraction strictly between 0 and 1"),
        ("data.valid_size=1.0", "data.valid_size must be a count of images (an integer such as 10000, or 0 for none) or a fraction strictly between 0 and 1"),
        ("model.beta_type=1", "unknown config key 'model.beta_type' in the -o overrides; did you mean train.beta_type?"),
        ("lr=0.1", "unknown config key 'lr' in the -o overrides; did you mean train.lr?"),
        ("train.optimizer=rmsprop", "train.optimizer must be one of adam, sgd, momentum"),
        ("train.lr_schedule=cosine", "train.lr_schedule must be one of exponential, step"),
        ("train.lr_milestones=[5,3]", "train.lr_milestones must be increasing whole epochs"),
        ("prune.fractions=[0.5,1.0]", "prune.fractions must be fractions in [0, 1)"),
        ("prune.ranking=layer", "prune.ranking must be one of global, per_layer"),
        ("data.hflip=maybe", "data.hflip must be true or false"),
        ("train=3", "train in the -o overrides must be a section of keys"),
        ("device=tpu", "device must be one of auto, cpu, gpu"),
        ("train.lr", "must look like section.key=value"),
    ],
)
def test_bad_values_name_the_key_and_the_allowed_values(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(BASE, [override])


def test_valid_size_0_holds_nothing_out_and_leaves_no_validation_split_to_score():
    assert load_config(BASE, ["data.valid_size=0"]).data.valid_size == 0
    with pytest.raises(ConfigError, match="eval.split valid needs a validation split, but data.valid_size is 0"):
        load_config(BASE, ["data.valid_size=0", "eval.split=valid"])


def test_blundells_config_is_the_final_fit_on_every_training_image_and_the_others_hold_10000_out():
    blundell = load_config(BASE_CONFIG)
    assert blundell.data.valid_size == 0 and blundell.train.optimizer == "sgd"
    assert load_config(BASE_CONFIG, ["data.valid_size=10000", "eval.split=valid"]).eval.split == "valid"  # choosing settings
    for name in ("mnist_lenet_best.yaml", "mnist_2fc_best.yaml", "mnist_2fc_freq.yaml"):
        assert load_config(os.path.join(REPO, "conf", name)).data.valid_size == 10000


def test_malformed_yaml_names_the_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  name: [2fc\n")
    with pytest.raises(ConfigError, match=r"malformed YAML in .*bad.yaml line \d+"):
        load_config(str(bad))


def test_a_config_that_is_not_utf8_or_is_empty_says_so(tmp_path):
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("# Konfiguration f\xfcr 2fc\ntrain:\n  lr: 0.01\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin.yaml is not UTF-8 text \(byte \d+\); save the config as UTF-8"):
        load_config(str(latin))
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing here\n")
    with pytest.raises(ConfigError, match="empty.yaml is empty"):
        load_config(str(empty))


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


EARLIER_PORT = os.path.join(REPO, "tests", "fixtures", "earlier_port", "base.yaml")


def test_the_earlier_ports_config_is_translated_key_by_key():
    notes = []
    cfg = load_config(EARLIER_PORT, notes=notes)
    assert len(notes) == 1 and "earlier Paddle port's layout: translated" in notes[0]
    assert (cfg.data.name, cfg.data.input_size, cfg.model.name, cfg.model.activation) == ("mnist", 28, "2fc", "relu")
    assert (cfg.train.num_epochs, cfg.train.lr, cfg.train.lr_decay, cfg.train.batch_size, cfg.seed) == (600, 0.001, 0.95, 256, 2021)
    assert cfg.train.optimizer == "adam" and cfg.train.lr_schedule == "exponential" and cfg.train.beta_type == "Blundell"
    assert cfg.train.weight_decay == pytest.approx(0.15 / 50000)  # its decay on N x the per-sample loss
    assert (cfg.model.prior.type, cfg.model.prior.sigma, cfg.model.posterior.rho_init) == ("gaussian", 0.1, [-5.0, 0.1])
    assert cfg.eval.weights == os.path.join(REPO, "tests", "fixtures", "earlier_port", "checkpoints", "model_best_bbb.pdparams")


@pytest.mark.parametrize("extra, message", [
    ("data:\n  name: MNIST\n  class_dim: 100\nhparas: {}\n", "data.class_dim must be 10 for mnist"),
    ("data:\n  input_size: [3, 32, 32]\nhparas: {}\n", "data.input_size [3, 32, 32] does not fit mnist"),
    ("hparas:\n  warmup: 3\nmodel:\n  priors: {prior_sigma: 0.1}\n", "these keys have no counterpart here: hparas.warmup"),
])
def test_an_earlier_port_config_with_keys_that_disagree_or_have_no_counterpart_is_refused(tmp_path, extra, message):
    path = tmp_path / "old.yaml"
    path.write_text(extra)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(str(path))
