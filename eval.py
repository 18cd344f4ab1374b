"""Score a trained net on the whole test set: per-sample error and NLL, with a
Monte-Carlo ensemble and with the posterior mean weights.

    python main.py --config conf/base.yaml --mode eval [--weights PATH] [--json]
"""
from __future__ import annotations

import paddle
import paddle.nn.functional as F

from data import build_test_loader
from model.elbo import mc_log_probs
from model.nets import build_net
from utils.checkpoint import load_weights
from utils.runtime import RunPaths, seed_everything, set_device, setup_logging


@paddle.no_grad()
def score(model, loader, samples: int, num_train: int | None = None) -> dict:
    """Accuracy and error counted per sample over the whole loader, mean NLL,
    KL, and (given num_train) the negative ELBO per training sample."""
    model.eval()
    n = correct = 0
    nll_sum = kl_sum = 0.0
    batches = 0
    for images, labels in loader:
        log_probs, kl = mc_log_probs(model, images, samples)
        nll_sum += float(F.nll_loss(log_probs, labels, reduction="sum"))
        correct += int((log_probs.argmax(axis=-1) == labels).astype("int64").sum())
        n += labels.shape[0]
        kl_sum += float(kl)
        batches += 1
    result = {"n": n, "acc": 100.0 * correct / n, "error": 100.0 * (n - correct) / n, "nll": nll_sum / n, "kl": kl_sum / max(batches, 1)}
    if num_train:
        result["loss"] = result["nll"] + result["kl"] / num_train
    return result


def evaluate(cfg, weights: str | None = None) -> dict:
    """Load a checkpoint (weights, else eval.weights, else the run's best) and score the test set."""
    set_device(cfg.device)
    seed_everything(cfg.seed)
    logger = setup_logging()
    path = weights or cfg.eval.weights or RunPaths(cfg).best
    model = build_net(cfg)
    load_weights(model, path, what=f"{cfg.model.name}/{cfg.model.layer_type}")
    loader = build_test_loader(cfg)
    results = {"weights": path, "model": cfg.model.name, "layer_type": cfg.model.layer_type, "dataset": cfg.data.name}
    if model.is_bayesian:
        model.set_sampling(True)
        results["mc"] = dict(score(model, loader, cfg.train.valid_ens), samples=cfg.train.valid_ens)
        model.set_sampling(False)
    results["mean"] = score(model, loader, 1)
    for kind in ("mc", "mean"):
        if kind in results:
            r = results[kind]
            logger.info("test %-4s: error %.2f%% (%d of %d), NLL %.4f", kind, r["error"], round(r["error"] * r["n"] / 100), r["n"], r["nll"])
    return results
