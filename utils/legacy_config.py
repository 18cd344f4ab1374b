"""Configs of the earlier PaddlePaddle port of PyTorch-BayesianCNN, translated.

That port's conf/base.yaml has the sections `data`, `hparas` and `model`, with its
own key names (hparas.learning_strategy.lr_start, model.priors.prior_sigma,
data.input_size: [1, 28, 28], ...). translate() maps every key it knows to this
project's keys, checks the ones that have no meaning here (data.class_dim must
agree with the data set), and refuses the rest by name.
"""
from __future__ import annotations

import os

from utils.errors import ConfigError
from utils.trees import flatten, set_dotted

DATA_NAMES = {"mnist": "mnist", "fashionmnist": "fashion_mnist", "fashion_mnist": "fashion_mnist", "cifar10": "cifar10", "cifar100": "cifar100"}
CHANNELS = {"mnist": 1, "fashion_mnist": 1, "cifar10": 3, "cifar100": 3}
CLASSES = {"mnist": 10, "fashion_mnist": 10, "cifar10": 10, "cifar100": 100}
TRAIN_IMAGES = {"mnist": 60000, "fashion_mnist": 60000, "cifar10": 50000, "cifar100": 50000}
NET_NAMES = {"2fc": "2fc", "fc": "2fc", "mlp": "2fc", "lenet": "lenet", "alexnet": "alexnet", "3conv3fc": "3conv3fc"}

# old dotted key -> this project's dotted key, for values that carry over as they are
SAME_VALUE = {
    "data.num_workers": "data.num_workers",
    "data.valid_size": "data.valid_size",
    "data.root": "data.root",
    "data.data_dir": "data.root",
    "hparas.num_epochs": "train.num_epochs",
    "hparas.n_epochs": "train.num_epochs",
    "hparas.batch_size": "train.batch_size",
    "data.batch_size": "train.batch_size",
    "hparas.seeds": "seed",
    "hparas.seed": "seed",
    "hparas.save_epochs": "train.save_epochs",
    "hparas.visual_epochs": "train.visual_epochs",
    "hparas.learning_strategy.lr_start": "train.lr",
    "hparas.learning_strategy.lr_decay": "train.lr_decay",
    "model.layer_type": "model.layer_type",
    "model.activation_type": "model.activation",
    "model.beta_type": "train.beta_type",
    "model.train_ens": "train.train_ens",
    "model.valid_ens": "train.valid_ens",
    "model.priors.prior_mu": "model.prior.mu",
    "model.priors.prior_sigma": "model.prior.sigma",
    "model.priors.posterior_mu_initial": "model.posterior.mu_init",
    "model.priors.posterior_rho_initial": "model.posterior.rho_init",
}
# keys that name where the port wrote or read files, handled together below
PLACES = ("model.load_name", "model.save_dir")


def is_legacy(tree: dict) -> bool:
    """The earlier port's layout: a `hparas` section, or `model.priors`."""
    return "hparas" in tree or isinstance(tree.get("model"), dict) and "priors" in tree["model"]


def translate(tree: dict, path: str) -> tuple[dict, str]:
    """(the same settings in this project's keys, one line saying what was done)."""
    old = flatten(tree)
    conf = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "conf")
    # From the Bayesian-CNN settings (Adam with a per-epoch decay, a Gaussian prior, normal
    # initialisation), which the port fixed in code; stated too, so that no later default alters them.
    new: dict = {"_base_": os.path.join(conf, "bayescnn_base.yaml"), "run_name": "legacy_" + os.path.splitext(os.path.basename(path))[0],
                 "train": {"optimizer": "adam", "lr_schedule": "exponential"}, "model": {"prior": {"type": "gaussian"}, "posterior": {"init": "normal"}}}
    unknown = []
    name = str(old.pop("data.name", "mnist")).lower().replace("-", "").replace(" ", "")
    if name not in DATA_NAMES:
        raise ConfigError(f"{path}: data.name {name!r} of the earlier port is not a data set here ({', '.join(sorted(set(DATA_NAMES.values())))})")
    data = DATA_NAMES[name]
    set_dotted(new, "data.name", data)
    if "data.input_size" in old:
        size = old.pop("data.input_size")
        if isinstance(size, list) and len(size) == 3:
            channels, height, width = size
            if channels != CHANNELS[data] or height != width:
                raise ConfigError(f"{path}: data.input_size {size} does not fit {data} ({CHANNELS[data]} channels, square images); this project takes [channels, n, n]")
            size = height
        set_dotted(new, "data.input_size", size)
    if "data.class_dim" in old and old.pop("data.class_dim") != CLASSES[data]:
        raise ConfigError(f"{path}: data.class_dim must be {CLASSES[data]} for {data} (the number of classes follows from the data set here)")
    if "model.name" in old or "model.net_type" in old:
        net = str(old.pop("model.name", None) or old.pop("model.net_type")).lower()
        if net not in NET_NAMES:
            raise ConfigError(f"{path}: model.name {net!r} is not a net here ({', '.join(sorted(set(NET_NAMES.values())))})")
        set_dotted(new, "model.name", NET_NAMES[net])
    if "hparas.learning_strategy.weight_decay" in old:
        # The port's loss is N x (this project's per-sample loss) in its data term, and its Adam
        # adds weight_decay x w to that gradient: per sample, the same decay is weight_decay / N.
        valid = old.get("data.valid_size", 10000)
        n_train = TRAIN_IMAGES[data] - (valid if valid >= 1 else round(valid * TRAIN_IMAGES[data]))
        set_dotted(new, "train.weight_decay", float(old.pop("hparas.learning_strategy.weight_decay")) / n_train)
    load_name, save_dir = (old.pop(key, None) for key in PLACES)
    if load_name:
        base_dir = os.path.dirname(os.path.abspath(path))
        set_dotted(new, "eval.weights", os.path.normpath(os.path.join(base_dir, save_dir or ".", load_name)))
    for key, value in old.items():
        if key in SAME_VALUE:
            if key.endswith("_initial") and isinstance(value, (list, tuple)):
                value = [float(v) for v in value]
            set_dotted(new, SAME_VALUE[key], value)
        else:
            unknown.append(key)
    if unknown:
        raise ConfigError(f"{path} is in the earlier Paddle port's layout, and these keys have no counterpart here: {', '.join(unknown)}; delete them (README, 'Coming from the earlier Paddle port')")
    line = (f"{path} is in the earlier Paddle port's layout: translated to this project's keys "
            f"(python main.py --config {path} --print-config shows them; the KL weight follows this project's convention, README)")
    return new, line
