"""Which code path Paddle's bundled MKL takes on this CPU, chosen before Paddle loads.

Paddle's CPU wheels bundle an MKL (libmklml_intel.so) that picks its matrix
kernels by CPU vendor, not by the instructions the CPU has: on an AMD CPU with
AVX2 or AVX-512 it runs a generic SSE path, about 3x slower (a 128x1200 @
1200x1200 float32 product on one Zen 4 core: 33 GFLOP/s instead of 97).
MKL_DEBUG_CPU_TYPE=5, read once when MKL loads, makes it take its AVX2 path.

This module imports nothing heavy: every entry point (main.py, bench/, the
tests) calls use_fast_blas() before its first `import paddle`. Worker processes
of paddle.distributed.launch run main.py too, and inherit the environment.

    BBB_FAST_BLAS=0      leave MKL's choice alone
    MKL_DEBUG_CPU_TYPE   a value the user set always wins
"""
from __future__ import annotations

import os
import sys

VARIABLE = "MKL_DEBUG_CPU_TYPE"
OPT_OUT = "BBB_FAST_BLAS"
AVX2_PATH = "5"
SET_HERE = "BBB_FAST_BLAS_SET"  # marks a value this module set, which child processes inherit


def cpu_vendor_and_flags(cpuinfo: str = "/proc/cpuinfo") -> tuple[str, set[str]]:
    """('GenuineIntel' | 'AuthenticAMD' | ..., the instruction flags) of the first
    CPU in /proc/cpuinfo; ('', set()) where there is no such file (macOS, Windows)."""
    try:
        with open(cpuinfo, encoding="ascii", errors="replace") as f:
            text = f.read(1 << 16)
    except OSError:
        return "", set()
    vendor, flags = "", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "vendor_id" and not vendor:
            vendor = value.strip()
        elif key == "flags" and not flags:
            flags = set(value.split())
        if vendor and flags:
            break
    return vendor, flags


def decide(environ: dict, vendor: str, flags: set[str]) -> tuple[str | None, str]:
    """(the value to set MKL_DEBUG_CPU_TYPE to, or None to leave it; one line that
    says which path MKL will take and why)."""
    if VARIABLE in environ and environ.get(SET_HERE) == environ[VARIABLE]:
        return None, f"MKL path: AVX2 kernels on this {vendor or 'CPU'} ({VARIABLE}={environ[VARIABLE]}, set by bbb-paddle; {OPT_OUT}=0 turns this off)"
    if VARIABLE in environ:
        return None, f"MKL path: {VARIABLE}={environ[VARIABLE]} as set by the user"
    if environ.get(OPT_OUT, "1").strip().lower() in ("0", "false", "no", "off"):
        return None, f"MKL path: MKL's own choice ({OPT_OUT}=0)"
    if vendor in ("", "GenuineIntel"):
        return None, f"MKL path: MKL's own choice ({vendor or 'CPU vendor unknown'})"
    if "avx2" not in flags:
        return None, f"MKL path: MKL's own choice ({vendor} without AVX2)"
    return AVX2_PATH, f"MKL path: AVX2 kernels on this {vendor} CPU ({VARIABLE}={AVX2_PATH}; {OPT_OUT}=0 turns this off)"


def use_fast_blas(environ: dict | None = None) -> str:
    """Set MKL_DEBUG_CPU_TYPE where MKL would otherwise take its slow path; returns
    the line that says which path is in use (utils.runtime.prepare logs it).
    Must run before Paddle is imported, or it changes nothing."""
    environ = os.environ if environ is None else environ
    value, line = decide(environ, *cpu_vendor_and_flags())
    if value is not None:
        environ[VARIABLE] = environ[SET_HERE] = value
        if "paddle" in sys.modules:  # MKL read its setting when Paddle loaded
            line += " [too late: Paddle was already imported]"
    return line


STATUS = use_fast_blas()  # on import, so that `import utils.blas` first is all an entry point needs
