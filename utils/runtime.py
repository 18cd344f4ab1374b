"""Process set-up shared by every mode: device, seeds, logging."""
from __future__ import annotations

import logging
import os
import random
import sys

import numpy as np
import paddle

from model.layers import noise
from utils.errors import ConfigError

LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"


def set_device(device: str) -> str:
    """'auto' -> the GPU when Paddle sees one, else the CPU."""
    has_gpu = paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
    if device == "gpu" and not has_gpu:
        raise ConfigError("device: gpu, but Paddle sees no GPU (install paddlepaddle-gpu, or set device: cpu / auto)")
    chosen = "gpu" if device == "gpu" or (device == "auto" and has_gpu) else "cpu"
    paddle.set_device(chosen)
    return chosen


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
