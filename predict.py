"""Classify image files and say how sure the net is.

    python main.py --config conf/base.yaml --mode pred --image a.png [b.png | folder ...] [--samples N] [--json]
"""
from __future__ import annotations

import numpy as np
import paddle

from data import load_image
from data.datasets import expand_image_paths
from model.elbo import mc_probs
from model.nets import build_net
from utils.checkpoint import load_weights
from utils.errors import ImageError
from utils.runtime import RunPaths, seed_everything, set_device, setup_logging
from utils.uncertainty import entropy, mutual_information, softmax_uncertainty


def describe(probs: np.ndarray, topk: int) -> dict:
    """Summary of one image's passes: probs [T, C]."""
    p_bar = probs.mean(axis=0)
    aleatoric, epistemic = softmax_uncertainty(probs)
    order = np.argsort(-p_bar)[:topk]
    return {
        "class": int(order[0]),
        "probability": float(p_bar[order[0]]),
        "top": [{"class": int(c), "probability": float(p_bar[c])} for c in order],
        "probabilities": [float(p) for p in p_bar],
        "aleatoric": float(aleatoric.sum()),
        "epistemic": float(epistemic.sum()),
        "entropy": float(entropy(p_bar)),
        "mutual_information": float(mutual_information(probs)),
    }


@paddle.no_grad()
def predict(cfg, images: list[str], samples: int | None = None, weights: str | None = None) -> list[dict]:
    """One result per image file; an unreadable file gives {'path', 'error'} and the rest go on."""
    set_device(cfg.device)
    seed_everything(cfg.seed)
    logger = setup_logging()
    samples = samples or cfg.pred.samples
    model = build_net(cfg)
    path = weights or cfg.eval.weights or RunPaths(cfg).best
    load_weights(model, path, what=f"{cfg.model.name}/{cfg.model.layer_type}")
    model.eval()
    if not model.is_bayesian:
        samples = 1  # a deterministic net gives the same answer every pass
    results = []
    for image_path in expand_image_paths(images):
        try:
            x = paddle.to_tensor(load_image(image_path, cfg.data))
        except ImageError as e:
            logger.error("%s", e)
            results.append({"path": image_path, "error": str(e)})
            continue
        probs = mc_probs(model, x, samples)[:, 0, :].numpy()
        results.append({"path": image_path, "samples": samples, **describe(probs, cfg.pred.topk)})
    return results


def format_result(result: dict) -> str:
    if "error" in result:
        return f"{result['path']}: error: {result['error']}"
    top = ", ".join(f"{t['class']} ({t['probability']:.3f})" for t in result["top"])
    return (
        f"{result['path']}: class {result['class']} with probability {result['probability']:.3f}; top: {top}; "
        f"aleatoric {result['aleatoric']:.4f}, epistemic {result['epistemic']:.4f}, entropy {result['entropy']:.4f} "
        f"({result['samples']} passes)"
    )
