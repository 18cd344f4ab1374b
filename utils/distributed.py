"""Data-parallel training across processes started by paddle.distributed.launch.

    python -m paddle.distributed.launch --nproc_per_node N main.py --config ... --mode train

Each process trains a paddle.DataParallel copy of the net on its own share of
every epoch's minibatches; gradients are averaged after each backward. Without
the launcher there is one process and every function here is a no-op.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import paddle
import paddle.distributed as dist


@dataclass(frozen=True)
class ProcessGroup:
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Only the main process writes logs, plots and checkpoints."""
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.world_size > 1

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum of `values` over all processes (float64 on the host)."""
        if not self.parallel:
            return list(values)
        total = paddle.to_tensor(np.asarray(values, dtype="float64"))
        dist.all_reduce(total)
        return [float(v) for v in total.numpy()]

    def wrap(self, model: paddle.nn.Layer) -> paddle.nn.Layer:
        """The net as each training step calls it: DataParallel when there are several processes.
        DataParallel copies rank 0's parameters to every process when it wraps them, and
        averages the gradients of the parameters forward() uses (so every trained
        parameter must be used there: see model/likelihood.py's NoiseStd)."""
        return paddle.DataParallel(model) if self.parallel else model


def launch_rank() -> int:
    """This process's rank in paddle.distributed.launch's group (0 without one), known before joining it."""
    return int(os.environ.get("PADDLE_TRAINER_ID", "0"))


def start() -> ProcessGroup:
    """Join the launcher's process group (gloo on CPUs, NCCL on GPUs), if there is one.
    Call after set_device: joining moves each process to its own GPU."""
    world_size = dist.get_world_size()  # from the launcher's environment; 1 without it
    if world_size > 1:
        dist.init_parallel_env()
    return ProcessGroup(rank=dist.get_rank(), world_size=world_size)

