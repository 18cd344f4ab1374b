"""Classify image files with a model written by --mode export, through paddle.inference:
the same answers, uncertainties and options as --mode pred, without the training code's net.

    python main.py --config conf/base.yaml --mode infer --image a.png [b.png | folder ...]
        [-o export.dir=DIR] [-o export.infer_form=mc|mean] [--plot] [--reject-threshold T] [--json]

Everything needed to read the images comes from <dir>/export.yaml; the config
only chooses the folder, the form and pred's reporting options (topk, reject score).
"""
from __future__ import annotations

import logging
import os

import numpy as np
import paddle
import paddle.inference as paddle_infer
import yaml

from data.datasets import expand_image_paths, read_photo
from utils.answers import AnswerOptions, plot_result
from utils.config import Config
from utils.errors import ExportError, ImageError
from utils.export_files import MANIFEST, OUTPUTS, export_dir, model_files
from utils.runtime import prepare


def read_manifest(model_dir: str) -> dict:
    path = os.path.join(model_dir, MANIFEST)
    if not os.path.isfile(path):
        raise ExportError(f"no exported model in {model_dir} ({MANIFEST} missing): run --mode export first, or point export.dir at its folder")
    try:
        with open(path, encoding="utf-8") as f:
            manifest = yaml.safe_load(f)
    except yaml.YAMLError:
        manifest = None
    if not isinstance(manifest, dict) or not {"forms", "data"} <= manifest.keys():
        raise ExportError(f"{path} is damaged or not written by --mode export; export the model again with --mode export")
    return manifest


class ExportedModel:
    """One exported form behind a paddle.inference predictor:
    images [B, C, H, W] -> (mean class probabilities [B, C], per-pass logits [S, B, C])."""

    def __init__(self, model_dir: str, form: str = "mc", gpu: bool = False):
        self.manifest = read_manifest(model_dir)
        if form not in self.manifest["forms"]:
            form = "mean"  # a deterministic net has only the mean model; its passes would all agree
        self.form = form
        self.samples = int(self.manifest["forms"][form]["samples"])
        form_dir = os.path.join(model_dir, self.manifest["forms"][form]["dir"])
        files = model_files(form_dir)
        if files is None:
            raise ExportError(
                f"no inference model files that Paddle {paddle.__version__} can read in {form_dir} "
                f"(exported with Paddle {self.manifest.get('paddle_version')}): run --mode export again here"
            )
        config = paddle_infer.Config(*files)
        if gpu:
            config.enable_use_gpu(256, 0)  # initial GPU memory pool in MB, device 0
        else:
            config.disable_gpu()
        # Paddle 2.6's graph optimisation passes break programs that draw noise (creating
        # the predictor fails); the mean model draws none and keeps them.
        config.switch_ir_optim(form == "mean")
        config.disable_glog_info()
        # Paddle 3.3's oneDNN kernel checks print to stdout, which would break --json.
        config.disable_mkldnn()
        try:
            self.predictor = paddle_infer.create_predictor(config)
        except Exception as e:
            raise ExportError(
                f"cannot load the inference model in {form_dir} ({type(e).__name__}); it was exported with Paddle "
                f"{self.manifest.get('paddle_version')}, this is Paddle {paddle.__version__}: run --mode export again here"
            ) from None
        self.data_cfg = Config(self.manifest["data"])

    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        (name,) = self.predictor.get_input_names()
        handle = self.predictor.get_input_handle(name)
        handle.reshape(list(images.shape))
        handle.copy_from_cpu(np.ascontiguousarray(images, dtype=np.float32))
        self.predictor.run()
        outputs = {kind: self.predictor.get_output_handle(name).copy_to_cpu() for kind, name in zip(OUTPUTS, self.predictor.get_output_names())}
        return outputs["probabilities"], outputs["logits"]


def infer(
    model_dir: str,
    images: list[str],
    options: AnswerOptions,
    form: str,
    batch_size: int,
    plot_dir: str | None = None,
    gpu: bool = False,
) -> list[dict]:
    """One result per image file, as predict.predict gives them (answered as `options`
    say); an unreadable file gives {'path', 'error'} and the rest go on. form: the mc or
    mean model of the export, batch_size: images per predictor run (export.infer_form and
    export.batch_size in the config); plot_dir: draw <plot_dir>/pred_<name>.png per image."""
    logger = logging.getLogger("bbb")
    model = ExportedModel(model_dir, form, gpu)
    results: list[dict | None] = []
    readable = []  # (position in results, path, image [C, H, W])
    for image_path in expand_image_paths(images):
        try:
            array, notes = read_photo(image_path, model.data_cfg, options.invert)
            readable.append((len(results), image_path, array[0], notes))
            results.append(None)
        except ImageError as e:
            logger.error("%s", e)
            results.append({"path": image_path, "error": str(e)})
    plotted: set = set()
    for start in range(0, len(readable), batch_size):
        chunk = readable[start : start + batch_size]
        _, logits = model(np.stack([image for _, _, image, _ in chunk]))
        for column, (slot, image_path, image, notes) in enumerate(chunk):
            passes = logits[:, column, :]
            result = options.answer(image_path, passes, notes)
            if plot_dir is not None:
                result["plot"] = plot_result(result, image, passes, plot_dir, plotted)
            results[slot] = result
    return results


def infer_with_config(cfg, images: list[str], plot: bool = False, reject_threshold: float | None = None) -> list[dict]:
    """infer() with the folder, form and reporting options of the config (like --mode pred)."""
    gpu = prepare(cfg)[0] == "gpu"
    return infer(
        export_dir(cfg),
        images,
        AnswerOptions.from_config(cfg.pred, reject_threshold),
        form=cfg.export.infer_form,
        batch_size=cfg.export.batch_size,
        plot_dir=cfg.output.image_dir if plot else None,
        gpu=gpu,
    )
