"""Classify image files and say how sure the net is.

    python main.py --config conf/base.yaml --mode pred --image a.png [b.png | folder ...]
        [--samples N] [--plot] [--reject-threshold T] [--json]
"""
from __future__ import annotations

import numpy as np
import paddle
from tqdm import tqdm

from data.datasets import expand_image_paths, read_photo
from data.tabular import require_image_data
from model.mc import mc_logits
from model.nets import load_trained_net
from model.scoring import NonFiniteScore
from utils.answers import AnswerOptions, plot_result
from utils.errors import ImageError
from utils.runtime import prepare


@paddle.no_grad()
def predict(
    cfg, images: list[str], samples: int | None = None, weights: str | None = None, plot: bool = False, reject_threshold: float | None = None
) -> list[dict]:
    """One result per image file; an unreadable file gives {'path', 'error'} and the rest go on.

    reject_threshold (else pred.reject_threshold) marks results whose pred.reject_score is
    above it as 'uncertain'; plot draws <image_dir>/pred_<name>.png per image."""
    require_image_data(cfg.data, "pred")
    _, logger = prepare(cfg)
    samples = samples or cfg.pred.samples
    model, _ = load_trained_net(cfg, weights)
    model.eval()
    if not model.is_bayesian:
        samples = 1  # a deterministic net gives the same answer every pass
    options = AnswerOptions.from_config(cfg.pred, reject_threshold)
    plotted: set = set()
    results = []
    paths = expand_image_paths(images)
    for image_path in tqdm(paths, desc="images", leave=False, disable=None if len(paths) > 1 else True):
        try:
            array, notes = read_photo(image_path, cfg.data, options.invert)
        except ImageError as e:
            logger.error("%s", e)
            results.append({"path": image_path, "error": str(e)})
            continue
        x = paddle.to_tensor(array)
        logits = mc_logits(model, x, samples)[:, 0, :].numpy()
        if not np.isfinite(logits).all():
            raise NonFiniteScore(f"the net's outputs for {image_path} are not finite: the weights are finite but overflow (weights from a training that blew up); use an earlier checkpoint")
        result = options.answer(image_path, logits, notes)
        if plot:
            result["plot"] = plot_result(result, x.numpy()[0], logits, cfg.output.image_dir, plotted)
        results.append(result)
    return results
