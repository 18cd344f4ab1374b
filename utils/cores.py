"""How many cores this process may use: read by Paddle's thread setting
(utils/runtime.py) and by the C++ operators (model/layers/fused.py)."""
from __future__ import annotations

import os


def cpu_share() -> int:
    """This process's share of the cores: the cores it may use divided among the
    training processes that paddle.distributed.launch started on this machine."""
    processes = max(1, int(os.environ.get("PADDLE_LOCAL_SIZE", "1")))  # set by paddle.distributed.launch
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1  # macOS has no affinity
    return max(1, cores // processes)
