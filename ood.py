"""Out-of-distribution detection: can an uncertainty score tell the test set the net
was trained for (in-distribution) from images of something else?

    python main.py --config conf/base.yaml --mode ood [--weights PATH] [--samples N] [--image FOLDER ...] [--json]

Every score of utils.uncertainty is computed for every in-distribution test image
and every image of each OOD set, and rated by AUROC and AUPR over the whole sets,
with the OOD images as the positive class. One checkpoint is scored four ways:
'bbb' and 'lrt' (its weights loaded into both layer types, Monte-Carlo passes),
'mean' (posterior mean weights, one pass) and 'freq', the deterministic twin:
the same net trained with plain layers, from ood.freq_weights.
"""
from __future__ import annotations

import copy
import os
import time

import numpy as np
import paddle

from data import build_test_loader
from data.ood_sets import NAMED_SETS, load_ood_images, named_set_folder
from data.tabular import require_image_data
from model.mc import loader_logits
from model.scoring import NonFiniteScore
from model.nets import build_net
from utils.checkpoint import load_weights
from utils.errors import UserError
from utils.metrics import auroc, average_precision
from utils.runtime import RunPaths, prepare, seed_everything
from utils.uncertainty import CONFIDENCE_SCORES, EPISTEMIC_SCORES, SCORE_NAMES, pass_probabilities, uncertainty_scores

VARIANT_LABELS = {"bbb": "BBB", "lrt": "LRT", "mean": "mean weights", "freq": "deterministic"}


def _with_layer_type(cfg, layer_type: str):
    changed = copy.deepcopy(cfg)
    changed.model["layer_type"] = layer_type
    return changed


def build_variants(cfg, weights: str | None, samples: int) -> tuple[dict, list[str]]:
    """{variant: (model, passes, checkpoint)} in table order, and notes on rows left out."""
    variants, notes = {}, []
    path = weights or cfg.eval.weights or RunPaths(cfg).best
    net_name = f"{cfg.model.name}/{cfg.model.layer_type}"
    if cfg.model.layer_type == "freq":
        model = build_net(cfg)
        load_weights(model, path, what=net_name)
        variants["freq"] = (model, 1, path)
        notes.append("the checkpoint is deterministic (layer_type freq): no BBB, LRT or mean-weight rows")
        return variants, notes
    # BBB and LRT layers share parameter names, so one checkpoint loads into both.
    for name in ("bbb", "lrt", "mean"):
        model = build_net(_with_layer_type(cfg, "bbb" if name == "mean" else name))
        load_weights(model, path, what=net_name)
        model.set_sampling(name != "mean")
        variants[name] = (model, 1 if name == "mean" else samples, path)
    if cfg.ood.freq_weights:
        model = build_net(_with_layer_type(cfg, "freq"))
        load_weights(model, cfg.ood.freq_weights, what=f"{cfg.model.name}/freq (ood.freq_weights)")
        variants["freq"] = (model, 1, cfg.ood.freq_weights)
    else:
        notes.append("no deterministic twin: set ood.freq_weights to a checkpoint of the same net trained with model.layer_type=freq")
    return variants, notes


def load_sets(cfg, image_folders: list[str]) -> dict:
    """{set name: (folder, images [N, C, H, W])}: the configured named sets, then any image folders."""
    sets = {}
    for name in cfg.ood.sets:
        key = NAMED_SETS[name].config_key
        root = cfg.get_path(key)
        folder = named_set_folder(name, root)
        hint = f"set {key} to a folder holding them" + ("" if root else " (null means Paddle's cache folder, as here)")
        sets[name] = (folder, load_ood_images(folder, cfg.data, what=f"ood set {name}", hint=hint))
    for folder in image_folders:
        name = os.path.basename(os.path.normpath(folder)) or "images"
        while name in sets:
            name += "_"
        sets[name] = (folder, load_ood_images(folder, cfg.data, what=f"OOD folder {folder}"))
    if not sets:
        raise UserError("no OOD set to score: list some in ood.sets (notmnist, fashion_mnist) or give folders with --image")
    return sets


def _in_distribution(cfg) -> tuple[np.ndarray, np.ndarray]:
    """The whole in-distribution test set as net inputs and labels."""
    images, labels = [], []
    for x, y in build_test_loader(cfg):
        images.append(x.numpy())
        labels.append(y.numpy())
    return np.concatenate(images), np.concatenate(labels)


def _batches(images: np.ndarray, batch_size: int):
    for start in range(0, len(images), batch_size):
        yield paddle.to_tensor(images[start : start + batch_size])


def detection(in_scores: dict, out_scores: dict, single_pass: bool) -> dict:
    """{score: {'auroc', 'aupr'}} with the OOD inputs as positives; None for scores
    that a single pass cannot give (they are 0 for every input)."""
    out = {}
    for name in SCORE_NAMES:
        if single_pass and name in EPISTEMIC_SCORES:
            out[name] = None
            continue
        sign = -1.0 if name in CONFIDENCE_SCORES else 1.0  # a low max probability points to OOD
        values = sign * np.concatenate([in_scores[name], out_scores[name]])
        labels = np.r_[np.zeros(len(in_scores[name])), np.ones(len(out_scores[name]))]
        out[name] = {"auroc": auroc(labels, values), "aupr": average_precision(labels, values)}
    return out


def _passes(n: int) -> str:
    return f"{n} pass" if n == 1 else f"{n} passes"


def _best(table: dict, variants: list[str]) -> dict | None:
    rated = [(row[v]["auroc"], v, score) for score, row in table.items() for v in variants if row.get(v)]
    if not rated:
        return None
    value, variant, score = max(rated)
    return {"variant": variant, "score": score, "auroc": value}


def run_ood(cfg, weights: str | None = None, samples: int | None = None, image_folders: list[str] = (), plot: bool = True) -> dict:
    """Score the in-distribution test set against every OOD set with every variant;
    with plot, draw <image_dir>/ood_<set>.png (histograms of the first variant's scores)."""
    require_image_data(cfg.data, "ood")
    _, logger = prepare(cfg)
    samples = samples or cfg.ood.samples
    sets = load_sets(cfg, list(image_folders))  # data first: a missing folder fails before any work
    in_images, in_labels = _in_distribution(cfg)
    variants, notes = build_variants(cfg, weights, samples)
    for note in notes:
        logger.info("ood: %s", note)
    result = {
        "in_distribution": cfg.data.name,
        "n_in": int(len(in_images)),
        "variants": {},
        "sets": {name: {"folder": folder, "n": int(len(images)), "scores": {s: {} for s in SCORE_NAMES}} for name, (folder, images) in sets.items()},
        "notes": notes,
    }
    histogram_scores = {}
    for variant, (model, passes, path) in variants.items():
        start = time.time()
        seed_everything(cfg.seed)  # the same noise for every run of the command
        in_logits = loader_logits(model, _batches(in_images, cfg.ood.batch_size), passes)
        if not np.isfinite(in_logits).all():
            raise NonFiniteScore(f"the outputs of {path} are not finite: the weights are finite but overflow (weights from a training that blew up); use an earlier checkpoint")
        in_scores = uncertainty_scores(in_logits)
        predicted = pass_probabilities(in_logits, "softmax").mean(axis=0).argmax(axis=-1)
        error = 100.0 * float((predicted != in_labels).mean())
        result["variants"][variant] = {"label": VARIANT_LABELS[variant], "weights": path, "samples": passes, "test_error": error}
        for name, (_, images) in sets.items():
            out_scores = uncertainty_scores(loader_logits(model, _batches(images, cfg.ood.batch_size), passes))
            for score, rating in detection(in_scores, out_scores, single_pass=passes == 1).items():
                result["sets"][name]["scores"][score][variant] = rating
            if name not in histogram_scores:  # the first variant's scores; a single pass has no epistemic part to show
                shown = [s for s in SCORE_NAMES if not (passes == 1 and s in EPISTEMIC_SCORES)]
                histogram_scores[name] = (variant, {s: in_scores[s] for s in shown}, {s: out_scores[s] for s in shown})
        logger.info("ood: %s scored in %.1f s (%s, test error %.2f%%)", VARIANT_LABELS[variant], time.time() - start, _passes(passes), error)
    for name, entry in result["sets"].items():
        entry["best_bayesian"] = _best(entry["scores"], [v for v in ("bbb", "lrt") if v in variants])
        twin = entry["scores"]["max_probability"].get("freq")
        entry["deterministic_max_probability_auroc"] = twin["auroc"] if twin else None
    if plot:
        from utils.plots import plot_ood_histograms  # matplotlib only when asked for

        for name, (variant, in_scores, out_scores) in histogram_scores.items():
            path = os.path.join(cfg.output.image_dir, f"ood_{name}.png")
            title = f"{VARIANT_LABELS[variant]} ({_passes(result['variants'][variant]['samples'])}): {cfg.data.name} test vs {name}"
            result["sets"][name]["plot"] = plot_ood_histograms(path, in_scores, out_scores, f"{cfg.data.name} test", name, title)
            logger.info("ood: histograms in %s", path)
    return result


def format_table(result: dict) -> str:
    """The result as readable tables: one per OOD set, a row per score, a column per variant."""
    variants = list(result["variants"])
    width = 16
    lines = ["variants: " + "; ".join(f"{v['label']} ({_passes(v['samples'])}, test error {v['test_error']:.2f}%)" for v in result["variants"].values())]
    for name, entry in result["sets"].items():
        lines += [
            "",
            f"{result['in_distribution']} test ({result['n_in']} images) vs {name} ({entry['n']} images): AUROC / AUPR, OOD = positive",
            f"{'score':<22}" + "".join(f"{result['variants'][v]['label']:>{width}}" for v in variants),
        ]
        for score, row in entry["scores"].items():
            cells = [f"{row[v]['auroc']:.3f} / {row[v]['aupr']:.3f}" if row.get(v) else "-" for v in variants]
            lines.append(f"{score.replace('_', ' '):<22}" + "".join(f"{c:>{width}}" for c in cells))
        best = entry["best_bayesian"]
        summary = f"best Bayesian score: {best['score'].replace('_', ' ')} ({result['variants'][best['variant']]['label']}), AUROC {best['auroc']:.3f}" if best else "no Bayesian rows"
        if entry["deterministic_max_probability_auroc"] is not None:
            summary += f"; deterministic max probability AUROC {entry['deterministic_max_probability_auroc']:.3f}"
        lines.append(summary)
        if entry.get("plot"):
            lines.append(f"histograms: {entry['plot']}")
    lines += [f"note: {note}" for note in result["notes"]]
    return "\n".join(lines)
