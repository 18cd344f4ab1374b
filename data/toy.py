"""The noisy cubic of the Bayes-by-Backprop regression tutorials, made in code:
x uniform on a range, y = x^3 + N(0, noise_std^2). No files, the same points for a seed."""
from __future__ import annotations

import numpy as np


def toy_cubic(size: int, noise_std: float, x_range: tuple[float, float], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`size` points: inputs [size, 1] and targets [size], both float64."""
    rng = np.random.default_rng(seed)
    low, high = x_range
    x = rng.uniform(low, high, size=(size, 1))
    y = x[:, 0] ** 3 + rng.normal(0.0, noise_std, size=size)
    return x, y
