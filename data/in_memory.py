"""A whole image set held as one normalised tensor, served in minibatches by index.

MNIST-sized sets fit in memory many times over, and their test transform is
deterministic, so it runs once at start-up instead of per image per epoch
(a DataLoader spends about 2 s per MNIST epoch on it, on this project's CPU).
The shuffle draws from NumPy's global generator, which train.py reseeds from
(seed, rank, epoch) each epoch, so a resumed run sees the same order.
"""
from __future__ import annotations

import numpy as np
import paddle
from paddle.io import Dataset


class ArrayDataset(Dataset):
    """Inputs x [N, ...] float32 with their targets y [N], as (x[i], y[i]) pairs: image sets
    held in memory here, and the tabular sets (data/tabular.py)."""

    def __init__(self, x: np.ndarray, y: np.ndarray):
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


class InMemoryLoader:
    """Minibatches of an ArrayDataset as Paddle tensors on the current device, like a
    DataLoader with drop_last=False: len() is the number of batches, .dataset the set."""

    def __init__(self, dataset: ArrayDataset, batch_size: int, shuffle: bool):
        self.dataset, self.batch_size, self.shuffle = dataset, batch_size, shuffle
        self._images = paddle.to_tensor(dataset.x)
        self._labels = paddle.to_tensor(dataset.y)

    def __len__(self) -> int:
        return -(-len(self.dataset) // self.batch_size)

    def __iter__(self):
        n = len(self.dataset)
        if self.shuffle:
            order = paddle.to_tensor(np.random.permutation(n).astype("int64"))
            for start in range(0, n, self.batch_size):
                index = order[start:start + self.batch_size]
                yield paddle.index_select(self._images, index), paddle.index_select(self._labels, index)
        else:
            for start in range(0, n, self.batch_size):
                yield self._images[start:start + self.batch_size], self._labels[start:start + self.batch_size]


def materialise(raw: Dataset, indices: np.ndarray, transform, vectorised: tuple | None = None) -> ArrayDataset:
    """The images at `indices` of a raw (PIL) dataset through `transform`, as arrays.

    vectorised: (mean, std) where the transform is only (pixel - mean) / std on
    images already at their native size; then the raw pixel arrays are normalised
    in one NumPy expression, the same float32 arithmetic as paddle's Normalize.
    """
    if vectorised is not None and hasattr(raw, "images"):
        labels = np.asarray([int(np.asarray(raw.labels[i]).reshape(-1)[0]) for i in indices], dtype="int64")
        mean, std = (np.float32(np.array(v).reshape(-1, 1, 1)) for v in vectorised)
        side = int(round(np.sqrt(np.asarray(raw.images[0]).size)))
        pixels = np.stack([raw.images[i] for i in indices]).astype("float32").reshape(len(indices), 1, side, side)
        return ArrayDataset((pixels - mean) / std, labels)
    images, found = [], []
    for i in indices:
        image, label = raw[int(i)]
        images.append(np.asarray(transform(image), dtype="float32"))
        found.append(int(np.asarray(label).reshape(-1)[0]))
    return ArrayDataset(np.stack(images), np.asarray(found, dtype="int64"))
