"""What pred and infer say about one image: the description of its Monte-Carlo
passes (class, probabilities, uncertainties), the reject rule, its plot and its line of text."""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from utils.uncertainty import decompose, entropy, mutual_information, pass_probabilities, uncertainty_scores


def describe(logits: np.ndarray, topk: int) -> dict:
    """Summary of one image's passes: logits [T, C].

    'aleatoric' and 'epistemic' are the softmax method's sums; 'uncertainty' holds
    both methods' per-class vectors and sums; 'votes' counts the passes won by each class."""
    probs = pass_probabilities(logits, "softmax")
    p_bar = probs.mean(axis=0)
    parts = decompose(logits)
    order = np.argsort(-p_bar)[:topk]
    return {
        "class": int(order[0]),
        "probability": float(p_bar[order[0]]),
        "top": [{"class": int(c), "probability": float(p_bar[c])} for c in order],
        "probabilities": [float(p) for p in p_bar],
        "aleatoric": float(parts["softmax"]["aleatoric_sum"]),
        "epistemic": float(parts["softmax"]["epistemic_sum"]),
        "entropy": float(entropy(p_bar)),
        "mutual_information": float(mutual_information(probs)),
        "uncertainty": {
            method: {
                "aleatoric": [float(v) for v in part["aleatoric"]],
                "epistemic": [float(v) for v in part["epistemic"]],
                "aleatoric_sum": float(part["aleatoric_sum"]),
                "epistemic_sum": float(part["epistemic_sum"]),
            }
            for method, part in parts.items()
        },
        "votes": [int(v) for v in np.bincount(probs.argmax(axis=-1), minlength=probs.shape[-1])],
    }


def judge(result: dict, logits: np.ndarray, score: str, threshold: float | None) -> dict:
    """Mark a description 'uncertain' when its score is above threshold (never when threshold is None)."""
    if threshold is None:
        return dict(result, uncertain=False)
    value = float(uncertainty_scores(logits[:, None, :])[score][0])
    return dict(result, uncertain=value > threshold, reject={"score": score, "value": value, "threshold": threshold})


@dataclass(frozen=True)
class AnswerOptions:
    """How pred and infer answer for each image (the pred section of the config, whose
    defaults are in conf/base.yaml): the top classes listed, the reject rule, what to
    do with a light background."""

    topk: int
    reject_score: str
    reject_threshold: float | None  # None: always give a class
    invert: str

    @classmethod
    def from_config(cls, pred_cfg, reject_threshold: float | None = None) -> "AnswerOptions":
        """The pred section's options; reject_threshold (--reject-threshold) replaces its threshold when given."""
        threshold = reject_threshold if reject_threshold is not None else pred_cfg.reject_threshold
        return cls(pred_cfg.topk, pred_cfg.reject_score, threshold, pred_cfg.invert)

    def answer(self, image_path: str, logits: np.ndarray, notes: dict) -> dict:
        """One image's result from its passes' logits [T, C]: describe(), then judge()."""
        described = {"path": image_path, "samples": int(logits.shape[0]), **notes, **describe(logits, self.topk)}
        return judge(described, logits, self.reject_score, self.reject_threshold)


def _plot_path(image_dir: str, image_path: str, taken: set) -> str:
    """<image_dir>/pred_<file stem>.png, numbered when two inputs share a stem."""
    stem = os.path.splitext(os.path.basename(image_path))[0]
    path, n = os.path.join(image_dir, f"pred_{stem}.png"), 1
    while path in taken:
        n += 1
        path = os.path.join(image_dir, f"pred_{stem}_{n}.png")
    taken.add(path)
    return path


def plot_result(result: dict, image: np.ndarray, logits: np.ndarray, image_dir: str, taken: set) -> str:
    """Draw one result as <image_dir>/pred_<file stem>.png: the input [C, H, W] and the passes' logits [T, C]."""
    from utils.plots import plot_prediction  # matplotlib only when asked for

    verdict = "uncertain" if result["uncertain"] else f"class {result['class']}"
    title = f"{os.path.basename(result['path'])}: {verdict} (p = {result['probability']:.3f}, entropy {result['entropy']:.3f}, MI {result['mutual_information']:.3f})"
    return plot_prediction(_plot_path(image_dir, result["path"], taken), image, pass_probabilities(logits, "softmax"), title)


def format_result(result: dict) -> str:
    if "error" in result:
        return f"{result['path']}: error: {result['error']}"
    top = ", ".join(f"{t['class']} ({t['probability']:.3f})" for t in result["top"])
    if result.get("uncertain"):
        r = result["reject"]
        verdict = f"uncertain ({r['score']} {r['value']:.4f} > {r['threshold']:g}); best guess {result['class']} with probability {result['probability']:.3f}"
    else:
        verdict = f"class {result['class']} with probability {result['probability']:.3f}"
    normalized = result["uncertainty"]["normalized"]
    seen = [note for key, note in (("inverted", "inverted: dark on light"), ("transparent", "transparency composited")) if result.get(key)]
    if result.get("frames"):
        seen.append(f"first of {result['frames']} frames")
    return (
        f"{result['path']}{' (' + ', '.join(seen) + ')' if seen else ''}: {verdict}; top: {top}; "
        f"aleatoric {result['aleatoric']:.4f}, epistemic {result['epistemic']:.4f} (softmax), "
        f"{normalized['aleatoric_sum']:.4f}, {normalized['epistemic_sum']:.4f} (normalized); "
        f"entropy {result['entropy']:.4f}, mutual information {result['mutual_information']:.4f} "
        f"({result['samples']} {'pass' if result['samples'] == 1 else 'passes'})"
    )
