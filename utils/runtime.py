"""Process set-up shared by every mode: device, CPU threads and memory, seeds, logging."""
from __future__ import annotations

import ctypes
import logging
import os
import random
import sys

import numpy as np
import paddle

from model.layers import noise
from utils import blas
from utils.cores import cpu_share
from utils.errors import ConfigError

LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"


def prepare(cfg, seed: int | None = None, log_file: str | None = None, quiet: bool = False) -> tuple[str, logging.Logger]:
    """What every mode does first: the device, CPU threads and allocator, the seeds (cfg.seed
    unless given), logging (to stderr, and to log_file when given; quiet: warnings
    only), and one line that says which BLAS path MKL takes (utils/blas.py).
    Returns (device, logger)."""
    device = set_device(cfg.device)
    set_cpu_threads(cfg.threads)
    keep_freed_memory()
    seed_everything(cfg.seed if seed is None else seed)
    logger = setup_logging(log_file)
    if quiet:
        logger.setLevel(logging.WARNING)
    if device == "cpu":
        logger.info(blas.STATUS)
    return device, logger


def set_device(device: str) -> str:
    """'auto' -> the GPU when Paddle sees one, else the CPU; returns which."""
    has_gpu = paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
    if device == "gpu" and not has_gpu:
        raise ConfigError("device: gpu, but Paddle sees no GPU (install paddlepaddle-gpu, or set device: cpu / auto)")
    chosen = "gpu" if device == "gpu" or (device == "auto" and has_gpu) else "cpu"
    paddle.set_device(chosen)
    return chosen


def set_cpu_threads(threads: int = 1) -> int:
    """Threads for Paddle's CPU matrix products (MKL), 0 = cpu_share(); returns the
    count. The fused operators always use cpu_share() (model/layers/fused.py)."""
    threads = threads or cpu_share()
    paddle.base.core.set_num_threads(threads)
    # MKL's OpenMP threads spin for 200 ms after each product (KMP_BLOCKTIME), and
    # there they take the cores from the fused operators' threads. Waiting asleep
    # made a 2fc LRT step 25 % faster on 2 cores with 2 threads.
    iomp = os.path.join(os.path.dirname(paddle.__file__), "libs", "libiomp5.so")
    if threads > 1 and os.path.exists(iomp):
        ctypes.CDLL(iomp).kmp_set_blocktime(0)
    return threads


def keep_freed_memory() -> bool:
    """Let glibc keep the process's freed memory instead of returning it to the system.

    Paddle frees and allocates the same large tensors every training step; by
    default glibc gives blocks of a few MB back to the kernel and the next step
    page-faults them in again: about 4,000 faults and 5 to 8 ms per 2fc Bayesian
    step on this machine's CPU. Returns whether it could (not where the C library
    is not glibc).
    """
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3  # <malloc.h>
    return all(
        mallopt(option, value) == 1  # 1 = accepted
        for option, value in (
            (m_mmap_threshold, 32 << 20),  # the largest glibc accepts: heap, not mmap, below 32 MB
            (m_trim_threshold, 256 << 20),  # keep up to 256 MB free at the heap's top
            (m_top_pad, 64 << 20),  # and grow it in 64 MB steps
        )
    )


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)  # paddle.io's shuffling draws from numpy
    paddle.seed(seed)
    noise.seed(seed)  # the Bayesian layers' CPU noise stream


def setup_logging(log_file: str | None = None) -> logging.Logger:
    """Log to stderr and, when given, to a file (appended, so resumed runs keep one log)."""
    logger = logging.getLogger("bbb")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    handlers = [logging.StreamHandler(sys.stderr)]
    if log_file:
        os.makedirs(os.path.dirname(log_file) or ".", exist_ok=True)
        handlers.append(logging.FileHandler(log_file))
    for handler in handlers:
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        logger.addHandler(handler)
    return logger


class RunPaths:
    """Where one run (cfg.run_name) keeps its checkpoints, logs and plots."""

    def __init__(self, cfg):
        out, name, layer = cfg.output, cfg.run_name, cfg.model.layer_type
        self.checkpoint_dir = os.path.join(out.checkpoint_dir, name)
        self.best = os.path.join(self.checkpoint_dir, f"model_best_{layer}.pdparams")
        self.last = os.path.join(self.checkpoint_dir, f"last_{layer}.pdstate")
        self.log_file = os.path.join(out.log_dir, f"{name}.log")
        self.visualdl_dir = os.path.join(out.log_dir, "visualdl", name)
        self.image_dir = os.path.join(out.image_dir, name)
        self._layer = layer

    def periodic(self, epoch: int) -> str:
        return os.path.join(self.checkpoint_dir, f"model_epoch{epoch}_{self._layer}.pdparams")
