"""Standard normal noise for the Bayesian layers.

On the CPU, Paddle's randn is the most expensive part of a BBB training step
(one normal per weight: about 35 ms of a 2.4-million-weight step here). Where the
C++ operators build (model/layers/fused.py), a counter-based generator draws the
normals (Philox keyed by the seed, Box-Muller; csrc/standard_normal.cc): about
1.4 ms per 1.44M normals on 2 cores. Elsewhere, NumPy draws them (exact N(0, 1)
float32 normals) on a background thread, one call ahead, so the drawing overlaps
the step's own work on another core. On a GPU paddle.randn is fast and used as
it is.

Either way the draws follow from the seed given to `seed()` and the order in
which the layers ask, so a fixed seed reproduces them.
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import paddle

from model.layers import fused


class HostNormalStream:
    """N(0, 1) float32 draws on the CPU: the C++ generator's, else NumPy's on one
    worker thread, a draw ahead per shape."""

    def __init__(self, seed: int):
        self._seed = seed
        self._offset = 0  # the C++ generator's next counter
        self._rng = np.random.default_rng(seed)
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bbb-noise")
        self._ahead: dict[tuple, Future] = {}

    def draw_like(self, x: paddle.Tensor) -> paddle.Tensor:
        drawn = fused.standard_normal(x, self._seed, self._offset)
        if drawn is None:
            return paddle.to_tensor(self.draw(tuple(int(s) for s in x.shape)))
        self._offset += fused.blocks(int(drawn.size))
        return drawn

    def sample(self, mean: paddle.Tensor, var: paddle.Tensor, var_eps: float) -> paddle.Tensor | None:
        """The C++ generator's mean + sqrt(var + var_eps) * eps in one pass, with the
        eps draw_like(mean) would give; None where it cannot run."""
        drawn = fused.normal_sample(mean, var, var_eps, self._seed, self._offset)
        if drawn is not None:
            self._offset += fused.blocks(int(drawn.size))
        return drawn

    def _submit(self, shape: tuple) -> Future:
        return self._worker.submit(self._rng.standard_normal, shape, dtype=np.float32)

    def draw(self, shape: tuple) -> np.ndarray:
        # Every draw goes through the single worker, in call order: reproducible.
        ahead = self._ahead.pop(shape, None) or self._submit(shape)
        self._ahead[shape] = self._submit(shape)
        return ahead.result()

    def close(self) -> None:
        self._worker.shutdown(wait=False, cancel_futures=True)


_stream: HostNormalStream | None = None


def seed(value: int) -> None:
    """Restart the CPU noise stream from `value` (paddle.seed covers the GPU path)."""
    global _stream
    if _stream is not None:
        _stream.close()  # its worker thread would otherwise idle until exit
    _stream = HostNormalStream(value)


def standard_normal_like(x: paddle.Tensor) -> paddle.Tensor:
    """Independent N(0, 1) draws of x's shape and dtype."""
    if not paddle.in_dynamic_mode():
        # Traced into a program (export.py): NumPy cannot run inside it. Sizes unknown
        # until the program runs (the batch: -1) are read then; the others stay fixed,
        # which conv2d's shape checks need.
        sizes = paddle.shape(x)
        return paddle.randn([n if isinstance(n, int) and n >= 0 else sizes[i] for i, n in enumerate(x.shape)], dtype=x.dtype)
    if _stream is None or x.dtype != paddle.float32 or not paddle.get_device().startswith("cpu"):
        return paddle.randn(x.shape, dtype=x.dtype)
    return _stream.draw_like(x)


def normal_sample(mean: paddle.Tensor, var: paddle.Tensor, var_eps: float) -> paddle.Tensor:
    """Draws of N(mean, var + var_eps), elementwise, differentiable in mean and var:
    mean + sqrt(var + var_eps) * standard_normal_like(mean), in one C++ pass where it can."""
    if paddle.in_dynamic_mode() and _stream is not None and paddle.get_device().startswith("cpu"):
        drawn = _stream.sample(mean, var, var_eps)
        if drawn is not None:
            return drawn
    return mean + paddle.sqrt(var + var_eps) * standard_normal_like(mean)
