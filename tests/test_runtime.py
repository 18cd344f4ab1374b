"""Process set-up (utils/runtime.py, utils/cores.py): CPU threads and the allocator."""
import platform

import pytest

from model.layers import fused
from utils import runtime


@pytest.fixture
def four_cores(monkeypatch):
    monkeypatch.setattr(runtime.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})  # the os module utils/cores.py reads
    yield
    runtime.set_cpu_threads(1)  # Paddle's thread count back to the suite's


def test_threads_0_takes_every_core_and_the_fused_operators_always_do(four_cores, monkeypatch):
    monkeypatch.delenv("PADDLE_LOCAL_SIZE", raising=False)
    assert runtime.set_cpu_threads(0) == 4
    assert fused.threads() == 4
    assert runtime.set_cpu_threads(1) == 1
    assert fused.threads() == 4


def test_processes_of_a_distributed_launch_share_the_cores(four_cores, monkeypatch):
    monkeypatch.setenv("PADDLE_LOCAL_SIZE", "2")
    assert runtime.set_cpu_threads(0) == 2
    assert fused.threads() == 2
    monkeypatch.setenv("PADDLE_LOCAL_SIZE", "8")  # more processes than cores: one thread each
    assert runtime.set_cpu_threads(0) == 1
    assert fused.threads() == 1


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_glibc_accepts_the_allocator_settings():
    assert runtime.keep_freed_memory()
