"""Train a Bayesian net by Bayes by Backprop, top to bottom.

    python main.py --config conf/base.yaml --mode train [--resume] [-o key=value ...]
    python -m paddle.distributed.launch --nproc_per_node N main.py ... --mode train   (data-parallel)
"""
from __future__ import annotations

import contextlib
import math
import os
import shutil
import time
import warnings
from dataclasses import dataclass

import paddle
from tqdm import tqdm
from visualdl import LogWriter

from data import build_train_valid_loaders, load_table
from model.elbo import elbo_loss, epoch_kl_weight, kl_weight
from model.likelihood import likelihood_of
from model.nets import build_net
from model.optimizers import make_optimizer, make_schedule
from model.scoring import NonFiniteScore, score
from utils.checkpoint import atomic_save, load_file, load_optimizer_state, optimizer_state, set_weights
from utils.distributed import ProcessGroup, launch_rank, start
from utils.errors import CheckpointError, TrainingDiverged
from utils.plots import plot_history
from utils.resume import check_resume
from utils.run_folder import check_writable, claim, remove_stray_temporaries, run_lock
from utils.runtime import RunPaths, prepare, seed_everything

HISTORY_KEYS = ("epoch", "lr", "kl_weight", "train_loss", "train_nll", "train_acc", "train_kl", "valid_loss", "valid_nll", "valid_acc", "valid_kl", "epoch_seconds")


@dataclass(frozen=True)
class Objective:
    """What each step's loss needs besides its minibatch (model/elbo.py)."""

    beta_type: str | float  # train.beta_type: the KL weight of each minibatch
    num_epochs: int         # for the weights that change over the run (Soenderby)
    num_train: int          # N, the training samples of all processes
    samples: int            # Monte-Carlo passes per step (train.train_ens; 1 for a deterministic net)
    average: str = "predictive"  # how the passes are averaged (train.ens_objective, model/mc.py TRAIN_AVERAGES)


def train_one_epoch(net, loader, optimizer, objective: Objective, epoch: int, group: ProcessGroup) -> dict:
    """One pass over this process's minibatches. num_batches (M in the KL weight) is the
    number of steps per epoch, which is what each process sees; the metrics are summed
    over all processes. A non-finite loss raises TrainingDiverged before its step."""
    net.train()
    likelihood = likelihood_of(net)
    num_batches = len(loader)
    loss_sum = nll_sum = kl_sum = fit = 0.0  # fit: right answers, or squared errors (likelihood.fit_sum)
    n = 0
    reader_cost = batch_cost = 0.0
    tick = time.perf_counter()
    progress = tqdm(loader, desc=f"epoch {epoch + 1}/{objective.num_epochs}", leave=False, disable=None if group.is_main else True)
    for i, (images, labels) in enumerate(progress):
        reader_cost += time.perf_counter() - tick
        beta = kl_weight(objective.beta_type, i, num_batches, epoch, objective.num_epochs)
        outputs, kl = likelihood.mc_outputs_and_kl(net, images, objective.samples, objective.average)
        loss = elbo_loss(outputs, labels, kl, beta, num_batches, objective.num_train, likelihood.nll)
        loss_value = float(loss)
        if group.parallel:  # every process must see the same value, or one stops while the others wait for it
            loss_value = group.sum([loss_value])[0] / group.world_size
        if not math.isfinite(loss_value):
            raise TrainingDiverged(f"loss became {loss_value} at epoch {epoch + 1}, batch {i + 1}")
        loss.backward()
        optimizer.step()
        optimizer.clear_grad(set_to_zero=False)  # drop the gradients: no pass writing zeros over them

        batch = labels.shape[0]
        n += batch
        loss_sum += loss_value * batch
        nll_sum += float(likelihood.nll(outputs, labels, reduction="sum"))
        kl_sum += float(kl)
        fit += likelihood.fit_sum(outputs, labels)
        batch_cost += time.perf_counter() - tick
        progress.set_postfix(loss=f"{loss_value:.4f}")
        tick = time.perf_counter()
    loss_sum, nll_sum, kl_sum, fit, n, batches = group.sum([loss_sum, nll_sum, kl_sum, fit, n, num_batches])
    return {
        "loss": loss_sum / n,
        "nll": nll_sum / n,
        likelihood.metric: likelihood.metric_value(fit, n),
        "kl": kl_sum / batches,
        "avg_reader_cost": reader_cost / num_batches,
        "avg_batch_cost": batch_cost / num_batches,
        "avg_ips": n / batch_cost,
    }


def last_good_files(paths: RunPaths) -> str:
    """Which files of the run are intact, for the message that stops it."""
    kept = [p for p in (paths.best, paths.last) if os.path.isfile(p)]
    return f"the last good files are {' and '.join(kept)}" if kept else "no checkpoint had been saved yet"


def _require_finite(model, va: dict | None, epoch: int, paths: RunPaths) -> None:
    """A non-finite validation loss (va None: no validation) or weight stops the run before anything of this epoch is written."""
    bad = [k for k in ("loss", "nll") if va is not None and not math.isfinite(va[k])]
    bad += [name for name, p in model.named_parameters() if not bool(paddle.isfinite(p).all())][:3]
    if bad:
        raise TrainingDiverged(
            f"epoch {epoch + 1} ended with non-finite {', '.join(bad)}; training stopped and nothing of this epoch was saved "
            f"({last_good_files(paths)}). Lower train.lr or check the data normalisation"
        )


def train(cfg, resume: bool = False, overwrite: bool = False, resume_with_changes: bool = False) -> dict:
    """Train as configured; returns the run's summary (best validation accuracy, paths, history).

    A run folder that holds a run is refused unless resume (continue it) or overwrite
    (move it aside, deleted once this run has a best checkpoint); see utils/run_folder.py."""
    paths = RunPaths(cfg)
    if launch_rank() != 0:  # rank 0 guards and writes the folder; the others only train
        return _train(cfg, paths, resume, resume_with_changes, aside=None)
    check_writable([paths.checkpoint_dir, os.path.dirname(paths.log_file) or ".", paths.image_dir])
    with run_lock(paths.checkpoint_dir):
        aside = claim(paths, resume, overwrite)
        check_writable([paths.checkpoint_dir, paths.visualdl_dir])
        remove_stray_temporaries(paths.checkpoint_dir)
        return _train(cfg, paths, resume, resume_with_changes, aside)


def _resume(cfg, paths, model, optimizer, scheduler, best_name: str, allow_changes: bool, logger) -> tuple[int, float, dict]:
    """Load the last state after checking its config against this one; (next epoch, best, history)."""
    try:
        state = load_file(paths.last)
    except CheckpointError as e:
        intact = f"; the best checkpoint {paths.best} is intact (eval, pred and export use it); train afresh with --overwrite" if os.path.isfile(paths.best) else ""
        raise CheckpointError(f"{e}{intact}") from None
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{paths.last} is not a last-state file of this run; train afresh with --overwrite")
    changes = check_resume(state.get("config"), cfg.to_dict(), allow_changes, paths.last)
    with warnings.catch_warnings():
        # LinearWarmup (train.warmup_epochs) keeps its inner schedule's state under a key of its
        # own, which the base class's set_state_dict then calls unused; it is used
        warnings.filterwarnings("ignore", message="There are some unused values in state_dict")
        try:
            set_weights(model, state["model"], paths.last, what="the net of this config")
            if any(c.startswith("train.optimizer:") for c in changes):
                scheduler.set_state_dict(state["optimizer"]["LR_Scheduler"])  # a new optimizer starts without the old one's moments
            else:
                load_optimizer_state(optimizer, model, state["optimizer"])
            start_epoch, best, history = state["epoch"] + 1, state[best_name], state["history"]
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{paths.last} is not a last-state file of this run ({e}); train afresh with --overwrite") from None
    if changes:
        scheduler.last_lr = scheduler.get_lr()  # the changed schedule from this epoch on, not the old one's rate
        logger.info("resuming with changed settings from epoch %d: %s", start_epoch + 1, "; ".join(changes))
    logger.info("resumed from %s after epoch %d", paths.last, start_epoch)
    return start_epoch, best, history


def _train(cfg, paths: RunPaths, resume: bool, resume_with_changes: bool, aside: str | None) -> dict:
    rank = launch_rank()
    # other weight noise per process (DataParallel syncs the initial weights); rank 0 alone logs progress
    device, logger = prepare(cfg, seed=cfg.seed + rank, log_file=paths.log_file if rank == 0 else None, quiet=rank != 0)
    group = start()

    table = load_table(cfg)  # a tabular set, read once (None for images)
    train_loader, valid_loader = build_train_valid_loaders(cfg, group.rank, group.world_size, table)
    num_train = len(train_loader.dataset)
    model = build_net(cfg, table)
    scheduler = make_schedule(cfg.train)
    optimizer = make_optimizer(model, scheduler, cfg.train)

    likelihood = likelihood_of(model)  # accuracy and the best by it for classes, RMSE and the best by NLL for regression
    history_keys = [key.replace("_acc", f"_{likelihood.metric}") for key in HISTORY_KEYS]
    best_name = f"best_valid_{likelihood.best_key}"
    start_epoch, best, history = 0, likelihood.worst, {key: [] for key in history_keys}
    if resume:
        start_epoch, best, history = _resume(cfg, paths, model, optimizer, scheduler, best_name, resume_with_changes, logger)
    if aside:
        logger.info("the previous run of %s was moved to %s; it is deleted once this run has a best checkpoint", cfg.run_name, aside)
    net = group.wrap(model)
    objective = Objective(cfg.train.beta_type, cfg.train.num_epochs, num_train, cfg.train.train_ens if model.is_bayesian else 1, cfg.train.ens_objective)
    validated = valid_loader is not None  # data.valid_size 0 holds no images out
    num_valid = int(group.sum([len(valid_loader.dataset)])[0]) if validated else 0

    logger.info(
        "run %s: %s/%s on %s (%d train, %d valid samples), %d parameters, device %s%s",
        cfg.run_name, cfg.model.name, cfg.model.layer_type, cfg.data.name, num_train, num_valid,
        sum(int(p.size) for p in model.parameters()), device,
        f", {group.world_size} processes x batch {cfg.train.batch_size}" if group.parallel else "",
    )
    if not validated:
        logger.info("no validation split (data.valid_size 0): every epoch's weights replace the best checkpoint, so it holds the last epoch's")
    with LogWriter(logdir=paths.visualdl_dir) if group.is_main else contextlib.nullcontext() as writer:
        for epoch in range(start_epoch, cfg.train.num_epochs):
            # Each epoch's shuffle and weight noise follow from (seed, rank, epoch)
            # alone, so a resumed run goes on exactly as the uninterrupted one would have.
            seed_everything(cfg.seed + group.rank + 100_003 * (epoch + 1))
            if hasattr(getattr(train_loader, "batch_sampler", None), "set_epoch"):
                train_loader.batch_sampler.set_epoch(epoch)  # the distributed shuffle, seeded by the epoch (also on resume)
            lr = optimizer.get_lr()
            started = time.perf_counter()
            try:
                tr = train_one_epoch(net, train_loader, optimizer, objective, epoch, group)
            except TrainingDiverged as e:
                raise TrainingDiverged(f"{e}; training stopped ({last_good_files(paths)}). Lower train.lr or check the data normalisation") from None
            scheduler.step()
            if not validated:
                va = {"loss": math.nan, "nll": math.nan, likelihood.metric: math.nan}
            else:
                try:
                    va = score(model, valid_loader, cfg.train.valid_ens if model.is_bayesian else 1, group=group)
                except NonFiniteScore:
                    va = {"loss": math.nan, "nll": math.nan}
            with paddle.no_grad():
                va["kl"] = float(model.kl())  # one estimate of the posterior's KL, the same for every validation image
            c = epoch_kl_weight(cfg.train.beta_type, len(train_loader), epoch, cfg.train.num_epochs) if model.is_bayesian else 0.0
            va["loss"] = va["nll"] + c * va["kl"] / num_train  # the quantity the training loss is: NLL + c KL / N
            _require_finite(model, va if validated else None, epoch, paths)
            seconds = time.perf_counter() - started

            row = {"epoch": epoch + 1, "lr": lr, "epoch_seconds": seconds, "kl_weight": c}
            row.update({f"train_{k}": tr[k] for k in ("loss", "nll", likelihood.metric, "kl")})
            row.update({f"valid_{k}": va[k] for k in ("loss", "nll", likelihood.metric, "kl")})
            for key in history_keys:
                history[key].append(row[key])
                if key != "epoch" and writer is not None:
                    writer.add_scalar(tag=key, step=epoch + 1, value=row[key])
            # without a split the line says so, rather than print nan (which reads as a diverged run)
            valid_part = (f"valid loss {va['loss']:.4f} nll {va['nll']:.4f} {likelihood.format_metric(va[likelihood.metric])}"
                          if validated else "no validation split")
            logger.info(
                "epoch %d/%d lr %.2e | train loss %.4f nll %.4f %s kl %.1f | %s | loss = NLL + %.3g KL / N | "
                "avg_reader_cost %.4f s avg_batch_cost %.4f s avg_ips %.1f img/s | %.1f s",
                epoch + 1, cfg.train.num_epochs, lr, tr["loss"], tr["nll"], likelihood.format_metric(tr[likelihood.metric]), tr["kl"],
                valid_part, c, tr["avg_reader_cost"], tr["avg_batch_cost"], tr["avg_ips"], seconds,
            )

            improved = not validated or likelihood.improves(va, best)
            best = va[likelihood.best_key] if improved else best
            if not group.is_main:
                continue  # the processes hold the same weights; one writes them
            if improved:
                atomic_save(model.state_dict(), paths.best)
                if validated:
                    logger.info("new best valid %s %.4f: saved %s", likelihood.best_key, best, paths.best)
                if aside and os.path.isdir(aside):
                    shutil.rmtree(aside)
                    logger.info("deleted the previous run kept in %s", aside)
            if (epoch + 1) % cfg.train.save_epochs == 0:
                atomic_save(model.state_dict(), paths.periodic(epoch + 1))
            atomic_save(
                {"model": model.state_dict(), "optimizer": optimizer_state(optimizer, model), "epoch": epoch, best_name: best,
                 "history": history, "config": cfg.to_dict()},
                paths.last,
            )
            if (epoch + 1) % cfg.train.visual_epochs == 0 or epoch + 1 == cfg.train.num_epochs:
                plot_history(history, paths.image_dir)

    return {
        "run_name": cfg.run_name,
        "epochs": len(history["epoch"]),
        best_name: best,
        "valid_images": num_valid,
        "best_checkpoint": paths.best,
        "last_state": paths.last,
        "log_file": paths.log_file,
        "history": history,
    }
