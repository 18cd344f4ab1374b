"""The seeded train/validation split, one for the image sets and the tabular ones."""
from __future__ import annotations

import numpy as np

from utils.errors import DataError


def split_indices(n: int, valid_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded disjoint (train, valid) index sets; valid_size is a count or a fraction below 1.
    0 holds nothing out: every index trains and the validation set is empty."""
    n_valid = int(round(valid_size * n)) if valid_size < 1 else int(valid_size)
    if not 0 <= n_valid < n or (valid_size > 0 and n_valid == 0):
        raise DataError(f"data.valid_size {valid_size} leaves no training or no validation images out of {n}; use a smaller count or a fraction (0 holds none out)")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_valid:]), np.sort(order[:n_valid])
