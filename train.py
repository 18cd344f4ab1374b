"""Train a Bayesian net by Bayes by Backprop, top to bottom.

    python main.py --config conf/base.yaml --mode train [--resume] [-o key=value ...]
"""
from __future__ import annotations

import math
import time

import paddle
from tqdm import tqdm
from visualdl import LogWriter

from data import build_train_valid_loaders
from eval import score
from model.elbo import elbo_loss, kl_weight
from model.mc import mc_log_probs
from model.nets import build_net
from utils.checkpoint import atomic_save, load_file, load_optimizer_state, optimizer_state
from utils.errors import CheckpointError, TrainingDiverged
from utils.plots import plot_history
from utils.runtime import RunPaths, seed_everything, set_device, setup_logging

HISTORY_KEYS = ("epoch", "lr", "train_loss", "train_nll", "train_acc", "train_kl", "valid_loss", "valid_nll", "valid_acc", "valid_kl", "epoch_seconds")


def make_optimizer(model: paddle.nn.Layer, lr, weight_decay: float) -> paddle.optimizer.Adam:
    """Adam; the L2 weight decay applies to means and plain weights, never to rho
    (decay would pull sigma = softplus(rho) towards softplus(0) = 0.69)."""
    rho = [p for name, p in model.named_parameters() if name.endswith("_rho")]
    rest = [p for name, p in model.named_parameters() if not name.endswith("_rho")]
    groups = [{"params": rest, "weight_decay": weight_decay}]
    if rho:
        groups.append({"params": rho, "weight_decay": 0.0})
    return paddle.optimizer.Adam(learning_rate=lr, parameters=groups)


def train_one_epoch(model, loader, optimizer, cfg, epoch: int, num_train: int, logger) -> dict:
    model.train()
    num_batches = len(loader)
    samples = cfg.train.train_ens if model.is_bayesian else 1
    loss_sum = nll_sum = kl_sum = 0.0
    correct = n = 0
    reader_cost = batch_cost = 0.0
    tick = time.perf_counter()
    progress = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.train.num_epochs}", leave=False, disable=None)
    for i, (images, labels) in enumerate(progress):
        reader_cost += time.perf_counter() - tick
        beta = kl_weight(cfg.train.beta_type, i, num_batches, epoch, cfg.train.num_epochs)
        log_probs, kl = mc_log_probs(model, images, samples)
        loss = elbo_loss(log_probs, labels, kl, beta, num_batches, num_train)
        loss_value = float(loss)
        if not math.isfinite(loss_value):
            raise TrainingDiverged(
                f"loss became {loss_value} at epoch {epoch + 1}, batch {i + 1}; training stopped and the last good "
                f"checkpoint is kept. Lower train.lr or check the data normalisation"
            )
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()

        batch = labels.shape[0]
        n += batch
        loss_sum += loss_value * batch
        nll_sum += float(paddle.nn.functional.nll_loss(log_probs, labels, reduction="sum"))
        kl_sum += float(kl)
        correct += int((log_probs.argmax(axis=-1) == labels).astype("int64").sum())
        batch_cost += time.perf_counter() - tick
        progress.set_postfix(loss=f"{loss_value:.4f}")
        tick = time.perf_counter()
    return {
        "loss": loss_sum / n,
        "nll": nll_sum / n,
        "acc": 100.0 * correct / n,
        "kl": kl_sum / num_batches,
        "avg_reader_cost": reader_cost / num_batches,
        "avg_batch_cost": batch_cost / num_batches,
        "avg_ips": n / batch_cost,
    }


def train(cfg, resume: bool = False) -> dict:
    """Train as configured; returns the run's summary (best validation accuracy, paths, history)."""
    device = set_device(cfg.device)
    seed_everything(cfg.seed)
    paths = RunPaths(cfg)
    logger = setup_logging(paths.log_file)

    train_loader, valid_loader = build_train_valid_loaders(cfg)
    num_train = len(train_loader.dataset)
    model = build_net(cfg)
    scheduler = paddle.optimizer.lr.ExponentialDecay(learning_rate=cfg.train.lr, gamma=cfg.train.lr_decay)
    optimizer = make_optimizer(model, scheduler, cfg.train.weight_decay)

    start_epoch, best_acc, history = 0, -1.0, {key: [] for key in HISTORY_KEYS}
    if resume:
        state = load_file(paths.last)
        try:
            model.set_state_dict(state["model"])
            load_optimizer_state(optimizer, model, state["optimizer"])
            start_epoch, best_acc, history = state["epoch"] + 1, state["best_valid_acc"], state["history"]
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{paths.last} is not a last-state file of this run ({e}); train without --resume") from None
        logger.info("resumed from %s after epoch %d", paths.last, start_epoch)

    logger.info(
        "run %s: %s/%s on %s (%d train, %d valid images), %d parameters, device %s",
        cfg.run_name, cfg.model.name, cfg.model.layer_type, cfg.data.name, num_train, len(valid_loader.dataset),
        sum(int(p.size) for p in model.parameters()), device,
    )
    with LogWriter(logdir=paths.visualdl_dir) as writer:
        for epoch in range(start_epoch, cfg.train.num_epochs):
            lr = optimizer.get_lr()
            started = time.perf_counter()
            tr = train_one_epoch(model, train_loader, optimizer, cfg, epoch, num_train, logger)
            scheduler.step()
            va = score(model, valid_loader, cfg.train.valid_ens if model.is_bayesian else 1, num_train)
            seconds = time.perf_counter() - started

            row = {"epoch": epoch + 1, "lr": lr, "epoch_seconds": seconds}
            row.update({f"train_{k}": tr[k] for k in ("loss", "nll", "acc", "kl")})
            row.update({f"valid_{k}": va[k] for k in ("loss", "nll", "acc", "kl")})
            for key in HISTORY_KEYS:
                history[key].append(row[key])
                if key != "epoch":
                    writer.add_scalar(tag=key, step=epoch + 1, value=row[key])
            logger.info(
                "epoch %d/%d lr %.2e | train loss %.4f acc %.2f%% kl %.1f | valid loss %.4f acc %.2f%% nll %.4f | "
                "avg_reader_cost %.4f s avg_batch_cost %.4f s avg_ips %.1f img/s | %.1f s",
                epoch + 1, cfg.train.num_epochs, lr, tr["loss"], tr["acc"], tr["kl"], va["loss"], va["acc"], va["nll"],
                tr["avg_reader_cost"], tr["avg_batch_cost"], tr["avg_ips"], seconds,
            )

            if va["acc"] > best_acc:
                best_acc = va["acc"]
                atomic_save(model.state_dict(), paths.best)
                logger.info("new best valid accuracy %.2f%%: saved %s", best_acc, paths.best)
            if (epoch + 1) % cfg.train.save_epochs == 0:
                atomic_save(model.state_dict(), paths.periodic(epoch + 1))
            atomic_save(
                {"model": model.state_dict(), "optimizer": optimizer_state(optimizer, model), "epoch": epoch, "best_valid_acc": best_acc, "history": history},
                paths.last,
            )
            if (epoch + 1) % cfg.train.visual_epochs == 0 or epoch + 1 == cfg.train.num_epochs:
                plot_history(history, paths.image_dir)

    return {
        "run_name": cfg.run_name,
        "epochs": len(history["epoch"]),
        "best_valid_acc": best_acc,
        "best_checkpoint": paths.best,
        "last_state": paths.last,
        "log_file": paths.log_file,
        "history": history,
    }
