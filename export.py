"""Save a trained net as Paddle inference models, for serving without this code's training side.

    python main.py --config conf/base.yaml --mode export [--weights PATH] [-o export.dir=DIR]

writes, under export.dir (default <checkpoint_dir>/<run_name>/export_<layer_type>):
    mc/inference.*    the sampled net run export.samples times in one program (Bayesian nets only)
    mean/inference.*  the net with the posterior mean weights (a freq net as it is)
    export.yaml       what infer.py needs: preprocessing, classes, passes, output order

Both programs take images [B, C, H, W] with any batch size B and return
(class probabilities averaged over the passes [B, C], every pass's logits [S, B, C]);
S is 1 for the mean model. The logits are there because the uncertainty split
(utils.uncertainty.decompose) needs each pass, not only their average.
"""
from __future__ import annotations

import os

import paddle
import paddle.nn.functional as F
import yaml
from paddle.static import InputSpec

from data import dataset_info
from data.tabular import require_image_data
from model.nets import load_trained_net
from utils.export_files import MANIFEST, MODEL_PREFIX, OUTPUTS, export_dir
from utils.runtime import prepare



class PassesNet(paddle.nn.Layer):
    """`net` run `passes` times on the same batch: (mean softmax [B, C], logits [S, B, C]).

    The loop is unrolled when traced, so every pass draws its own noise in the program.
    The KL, a training term, is left out (its Monte-Carlo form does not trace)."""

    def __init__(self, net: paddle.nn.Layer, passes: int):
        super().__init__()
        self.net, self.passes = net, passes

    def forward(self, x: paddle.Tensor) -> tuple[paddle.Tensor, paddle.Tensor]:
        logits = paddle.stack([self.net.logits(x) for _ in range(self.passes)])
        return F.softmax(logits, axis=-1).mean(axis=0), logits


def _save(layer: paddle.nn.Layer, path: str, input_shape: list[int]) -> None:
    # None: the batch size is chosen by each run of the saved program.
    paddle.jit.save(layer, path, input_spec=[InputSpec([None, *input_shape], "float32", name="image")])


def export(cfg, weights: str | None = None, out_dir: str | None = None) -> dict:
    """Write the inference models and export.yaml; returns what was written."""
    require_image_data(cfg.data, "export")  # the programs take images and give class probabilities
    _, logger = prepare(cfg)
    out_dir = out_dir or export_dir(cfg)
    net, path = load_trained_net(cfg, weights)
    net.eval()
    info = dataset_info(cfg.data.name)
    input_shape = [info.channels, cfg.data.input_size, cfg.data.input_size]
    forms = {}
    if net.is_bayesian:
        net.set_sampling(True)
        _save(PassesNet(net, cfg.export.samples), os.path.join(out_dir, "mc", MODEL_PREFIX), input_shape)
        forms["mc"] = {"dir": "mc", "samples": cfg.export.samples}
    net.set_sampling(False)
    _save(PassesNet(net, 1), os.path.join(out_dir, "mean", MODEL_PREFIX), input_shape)
    forms["mean"] = {"dir": "mean", "samples": 1}
    manifest = {
        "paddle_version": paddle.__version__,
        "weights": os.path.abspath(path),
        "model": {"name": cfg.model.name, "layer_type": cfg.model.layer_type},
        # infer.py rebuilds the test-image preprocessing from these alone
        "data": {"name": cfg.data.name, "input_size": cfg.data.input_size, "mean": list(cfg.data.mean), "std": list(cfg.data.std)},
        "input_shape": input_shape,
        "num_classes": info.num_classes,
        "outputs": OUTPUTS,
        "forms": forms,
    }
    with open(os.path.join(out_dir, MANIFEST), "w", encoding="utf-8") as f:
        yaml.safe_dump(manifest, f, sort_keys=False, default_flow_style=None)
    logger.info("exported %s of %s to %s", " and ".join(forms), path, out_dir)
    return {"dir": out_dir, "weights": path, "forms": forms}
