"""Prune the weights of lowest signal-to-noise ratio |mu| / sigma and score what is
left (Blundell et al. 2015, Table 2 and Figures 3-4).

    python main.py --config conf/base.yaml --mode prune [--weights PATH] [--split valid] [--samples N] [--plot] [--save] [--json]
"""
from __future__ import annotations

import os

import numpy as np

from data import build_test_loader, build_train_valid_loaders
from model.nets import build_net, load_trained_net
from model.pruning import apply_masks, prune_masks, restore, snapshot, snr_db, sparse_size, weight_snr
from model.scoring import score
from utils.checkpoint import atomic_save, load_weights
from utils.errors import ConfigError, UserError
from utils.runtime import RunPaths, prepare, seed_everything


def shipped_twin(cfg) -> str | None:
    """The deterministic twin's weights for Figure 3: prune.freq_weights, else the
    shipped checkpoints/shipped/<data>_<net>_freq.pdparams where there is one."""
    if cfg.prune.freq_weights:
        return cfg.prune.freq_weights
    repo = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(repo, "checkpoints", "shipped", f"{cfg.data.name}_{cfg.model.name}_freq.pdparams")
    return path if os.path.isfile(path) else None


def _twin_weights(cfg) -> np.ndarray | None:
    path = shipped_twin(cfg)
    if path is None:
        return None
    twin_cfg = type(cfg)({**cfg, "model": type(cfg.model)({**cfg.model, "layer_type": "freq"})})
    twin = build_net(twin_cfg)
    load_weights(twin, path, what=f"the deterministic twin {cfg.model.name}/freq")
    return np.concatenate([p.numpy().ravel() for name, p in twin.named_parameters() if name.endswith("weight")])


def prune(cfg, weights: str | None = None, samples: int | None = None, plot: bool = False, save: bool = False) -> dict:
    """Score the net with each fraction of prune.fractions removed; returns the table."""
    if cfg.model.layer_type == "freq":
        raise ConfigError("--mode prune ranks weights by |mu| / sigma, and a deterministic net (model.layer_type freq) has no sigma; use a bbb or lrt config")
    if cfg.model.likelihood != "categorical":
        raise ConfigError("--mode prune reports the classification error; it takes classification nets (model.likelihood categorical)")
    samples = cfg.prune.samples if samples is None else samples
    if samples < 0:
        raise UserError(f"--samples must be >= 0 for prune (0 = mean weights only), got {samples}")
    _, logger = prepare(cfg)
    model, path = load_trained_net(cfg, weights)
    split = cfg.eval.split
    loader = build_test_loader(cfg) if split == "test" else build_train_valid_loaders(cfg)[1]
    snr = weight_snr(model)
    original = snapshot(model)
    paths = RunPaths(cfg)
    rows = []
    for fraction in cfg.prune.fractions:
        restore(model, original)
        masks = prune_masks(snr, fraction, cfg.prune.ranking)
        apply_masks(model, masks)
        size = sparse_size(model, masks)
        model.set_sampling(False)
        row = {"fraction": fraction, "kept_weights": size.kept_weights, "total_weights": size.total_weights, "biases": size.biases,
               "sparse_mb": size.bytes / 2**20, "error_mean": score(model, loader, 1)["error"]}
        if samples:
            seed_everything(cfg.seed)  # the same noise for every fraction and every run
            model.set_sampling(True)
            row["error_mc"] = score(model, loader, samples)["error"]
        if save and fraction > 0:
            row["saved"] = os.path.join(paths.checkpoint_dir, f"pruned_{100 * fraction:g}pct_{cfg.model.layer_type}.pdparams")
            atomic_save(model.state_dict(), row["saved"])
        logger.info("%5.1f %% removed: %d of %d weights kept, error %.2f %% mean weights%s", 100 * fraction, size.kept_weights, size.total_weights,
                    row["error_mean"], f", {row['error_mc']:.2f} % MC ({samples})" if samples else "")
        rows.append(row)
    restore(model, original)
    dense_mb = sum(int(p.size) for p in model.parameters()) * 4 / 2**20
    result = {"weights": path, "split": split, "ranking": cfg.prune.ranking, "samples": samples, "dense_mb": dense_mb,
              "sparse_format": "CSR per layer: float32 mu and sigma, int32 column indices and row pointers; biases dense", "rows": rows}
    if plot:
        from utils.plots import plot_snr, plot_weight_histogram  # matplotlib only when asked for

        db = snr_db(snr)
        cuts = {f: float(np.quantile(db, f)) for f in cfg.prune.fractions if 0 < f < 1}
        result["plots"] = [
            plot_snr(os.path.join(paths.image_dir, "prune_snr.png"), db, cuts),
            plot_weight_histogram(os.path.join(paths.image_dir, "prune_weights.png"), np.concatenate([v.ravel() for v in _mean_weights(model)]), _twin_weights(cfg)),
        ]
        for plot_path in result["plots"]:
            logger.info("plot: %s", plot_path)
    return result


def _mean_weights(model) -> list[np.ndarray]:
    return [p.numpy() for name, p in model.named_parameters() if name.endswith("weight_mu")]


def format_prune(result: dict) -> str:
    mc = result["samples"] > 0
    head = f"{'removed':>8} {'weights kept':>22} {'sparse MB':>10} {'error mean':>11}" + (f" {'error MC':>9}" if mc else "")
    lines = [f"{result['split']} error after removing the weights of lowest |mu|/sigma ({result['ranking']} ranking; dense net {result['dense_mb']:.1f} MB)", head]
    for r in result["rows"]:
        kept = f"{r['kept_weights']:,} / {r['total_weights']:,}"
        line = f"{100 * r['fraction']:7.1f}% {kept:>22} {r['sparse_mb']:10.2f} {r['error_mean']:10.2f}%"
        if mc:
            line += f" {r['error_mc']:8.2f}%"
        lines.append(line)
    lines.append(f"biases ({result['rows'][0]['biases']:,}) are kept; sparse size: {result['sparse_format']}")
    lines += [f"plot: {p}" for p in result.get("plots", [])]
    lines += [f"saved: {r['saved']}" for r in result["rows"] if "saved" in r]
    return "\n".join(lines)
