"""MNIST, Fashion-MNIST, CIFAR-10/100 through paddle.vision.datasets, with a seeded
train/validation split and the config's input size and normalisation.

Files come from `data.root` when set, else from Paddle's own cache
(~/.cache/paddle/dataset/<folder>/), where Paddle downloads them if it may.
The tabular sets (toy_cubic, csv) come from data/tabular.py through the same loaders.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import paddle.vision.datasets as datasets
import paddle.vision.transforms as T
from paddle.io import DataLoader, Dataset, DistributedBatchSampler
from PIL import Image, UnidentifiedImageError

from data.in_memory import InMemoryLoader, materialise
from data.splits import split_indices
from data.photos import as_trained
from data.tabular import TabularData, is_tabular, load_tabular, tabular_test_set, tabular_train_valid_sets
from utils.errors import ConfigError, DataError, ImageError

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


@dataclass(frozen=True)
class DatasetInfo:
    loader: type            # the paddle.vision.datasets class
    cache_folder: str       # Paddle's folder under ~/.cache/paddle/dataset
    files: dict             # mode -> official file names
    channels: int
    native_size: int
    num_classes: int
    dark_background: bool   # light strokes on black: a photo of ink on paper is inverted to match (data/photos.py)


DATASETS = {
    "mnist": DatasetInfo(datasets.MNIST, "mnist", MNIST_FILES, 1, 28, 10, True),
    "fashion_mnist": DatasetInfo(datasets.FashionMNIST, "fashion-mnist", MNIST_FILES, 1, 28, 10, True),
    "cifar10": DatasetInfo(datasets.Cifar10, "cifar", {m: ("cifar-10-python.tar.gz",) for m in ("train", "test")}, 3, 32, 10, False),
    "cifar100": DatasetInfo(datasets.Cifar100, "cifar", {m: ("cifar-100-python.tar.gz",) for m in ("train", "test")}, 3, 32, 100, False),
}


def dataset_info(name: str) -> DatasetInfo:
    return DATASETS[name]


def paddle_cache_dir(folder: str) -> str:
    """Paddle's own download folder for a data set: ~/.cache/paddle/dataset/<folder>."""
    return os.path.join(os.path.expanduser("~"), ".cache", "paddle", "dataset", folder)


def _open_dataset(data_cfg, mode: str, root: str | None = None) -> Dataset:
    """The raw dataset (PIL images, no transform) for mode 'train' or 'test',
    from `root`, else data.root, else Paddle's cache."""
    info = dataset_info(data_cfg.name)
    root = root or data_cfg.root
    folder = root or paddle_cache_dir(info.cache_folder)
    paths = [os.path.join(folder, f) for f in info.files[mode]]
    missing = [p for p in paths if not os.path.isfile(p)]
    may_download = missing and root is None and data_cfg.download
    if missing and not may_download:
        raise DataError(
            f"missing data file(s) {', '.join(missing)}: put the official {data_cfg.name} files there "
            f"(or point data.root at a folder holding them, or run `make data DATA_DIR=...`)"
        )
    if not missing and info.files is MNIST_FILES:
        _check_idx_pair(*paths)
    # With explicit paths Paddle reads them as they are; with None it downloads into its cache and checks the MD5.
    args = [None] * len(paths) if may_download else paths
    try:
        if info.loader in (datasets.Cifar10, datasets.Cifar100):
            return info.loader(data_file=args[0], mode=mode, transform=None, download=True, backend="pil")
        return info.loader(image_path=args[0], label_path=args[1], mode=mode, transform=None, download=True, backend="pil")
    except Exception as e:  # a failed download or a corrupt file
        raise DataError(
            f"could not load {data_cfg.name} {mode} data from {', '.join(paths)} ({type(e).__name__}: {e}); "
            f"place the official files there or set data.root"
        ) from None


def _check_idx_pair(images: str, labels: str) -> None:
    """The counts in the headers of an MNIST-format image file and its label file agree."""
    import gzip
    import struct

    try:
        with gzip.open(images, "rb") as f:
            magic_i, n_images = struct.unpack(">II", f.read(8))
        with gzip.open(labels, "rb") as f:
            magic_l, n_labels = struct.unpack(">II", f.read(8))
    except (OSError, struct.error, EOFError) as e:
        raise DataError(f"cannot read {images} / {labels} as gzipped MNIST-format files ({type(e).__name__}); put the official files there") from None
    if (magic_i, magic_l) != (2051, 2049):
        raise DataError(f"{images} and {labels} are not an MNIST-format image file and label file (magic numbers {magic_i}, {magic_l}); put the official files there")
    if n_images != n_labels:
        raise DataError(f"{images} holds {n_images} images but {labels} holds {n_labels} labels: they are not a pair; use the matching train-* or t10k-* files")


def build_transform(data_cfg, train: bool) -> T.Compose:
    """PIL image -> float32 CHW array, (pixel - mean) / std, at data.input_size."""
    info = dataset_info(data_cfg.name)
    if len(data_cfg.mean) != info.channels:
        raise ConfigError(f"data.mean and data.std need {info.channels} entries (one per channel) for {data_cfg.name}, got {len(data_cfg.mean)}")
    steps = []
    if data_cfg.input_size != info.native_size:
        steps.append(T.Resize((data_cfg.input_size, data_cfg.input_size)))
    if train and data_cfg.hflip:
        steps.append(T.RandomHorizontalFlip())
    steps += [T.Transpose(), T.Normalize(mean=data_cfg.mean, std=data_cfg.std, data_format="CHW")]
    return T.Compose(steps)


class TransformedSubset(Dataset):
    """The images at `indices` of a raw dataset, through `transform`, with int64 scalar labels."""

    def __init__(self, raw: Dataset, indices, transform):
        self.raw, self.indices, self.transform = raw, np.asarray(indices), transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i):
        image, label = self.raw[int(self.indices[i])]
        return self.transform(image).astype("float32"), np.asarray(label, dtype="int64").reshape([])


def _in_memory(raw: Dataset, indices, data_cfg) -> Dataset:
    """The test transform applied once to each image at `indices` (data/in_memory.py)."""
    info = dataset_info(data_cfg.name)
    plain = data_cfg.input_size == info.native_size and info.channels == 1
    transform = build_transform(data_cfg, train=False)  # also checks mean/std against the channels
    return materialise(raw, np.asarray(indices), transform, (data_cfg.mean, data_cfg.std) if plain else None)


def build_train_valid_loaders(cfg, rank: int = 0, world_size: int = 1, table: TabularData | None = None):
    """Loaders of the seeded train/validation split. With several processes
    (data-parallel training), process `rank` of `world_size` gets its share:
    train.batch_size images per step from a DistributedBatchSampler, and every
    world_size-th validation image (disjoint shards, nothing repeated, so that
    summed counts give exact metrics). Image sets are held in memory, transformed
    once, except a training set with random flips or shared among processes. A
    tabular set comes from `table` where the caller has read it (data.load_table).
    With data.valid_size 0 every training image trains and the validation loader is None."""
    validated = cfg.data.valid_size != 0  # the same on every process, whatever its shard
    if is_tabular(cfg.data.name):
        train_set, valid_set = tabular_train_valid_sets(cfg, table or load_tabular(cfg), rank, world_size)
    else:
        raw = _open_dataset(cfg.data, "train")
        train_idx, valid_idx = split_indices(len(raw), cfg.data.valid_size, cfg.seed)
        valid_set = _in_memory(raw, valid_idx[rank::world_size], cfg.data) if validated else None
        if world_size == 1 and not cfg.data.hflip:
            train = InMemoryLoader(_in_memory(raw, train_idx, cfg.data), cfg.train.batch_size, shuffle=True)
            return train, InMemoryLoader(valid_set, cfg.eval.batch_size, shuffle=False) if validated else None
        train_set = TransformedSubset(raw, train_idx, build_transform(cfg.data, train=True))
    if world_size > 1:
        sampler = DistributedBatchSampler(train_set, batch_size=cfg.train.batch_size, num_replicas=world_size, rank=rank, shuffle=True)
        train_loader = DataLoader(train_set, batch_sampler=sampler, num_workers=cfg.data.num_workers)
    else:
        train_loader = DataLoader(train_set, batch_size=cfg.train.batch_size, shuffle=True, num_workers=cfg.data.num_workers)
    if not validated:
        return train_loader, None
    valid_loader = DataLoader(valid_set, batch_size=cfg.eval.batch_size, shuffle=False, num_workers=cfg.data.num_workers)
    return train_loader, valid_loader


def build_test_loader(cfg, table: TabularData | None = None):
    """The test set in batches of eval.batch_size; a tabular one from `table` where given."""
    if is_tabular(cfg.data.name):
        test_set = tabular_test_set(table or load_tabular(cfg))
        return DataLoader(test_set, batch_size=cfg.eval.batch_size, shuffle=False, num_workers=cfg.data.num_workers)
    raw = _open_dataset(cfg.data, "test", root=cfg.eval.data_root)
    return InMemoryLoader(_in_memory(raw, np.arange(len(raw)), cfg.data), cfg.eval.batch_size, shuffle=False)


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


class TestImageConverter:
    """Any PIL image -> the net's input [C, H, W], made like the test images: converted to
    the data set's channels, resized to its native size when it differs, then the test transform."""

    def __init__(self, data_cfg):
        info = dataset_info(data_cfg.name)
        self.mode = "L" if info.channels == 1 else "RGB"
        self.size = (info.native_size, info.native_size)
        self.transform = build_transform(data_cfg, train=False)

    def __call__(self, image: Image.Image) -> np.ndarray:
        image = image.convert(self.mode)
        if image.size != self.size:
            image = image.resize(self.size, Image.BILINEAR)
        return np.asarray(self.transform(image), dtype=np.float32)


def load_image(path: str, data_cfg) -> np.ndarray:
    """Any image file -> the net's input (1, C, H, W), converted like the test data, as it is."""
    return read_photo(path, data_cfg, invert="never")[0]


def read_photo(path: str, data_cfg, invert: str = "auto") -> tuple[np.ndarray, dict]:
    """An image as people take it -> (the net's input (1, C, H, W), notes): dark ink on
    light paper inverted for nets trained on light-on-dark images, transparency
    composited, an animation's first frame (data/photos.py)."""
    try:
        with Image.open(path) as image:
            image, notes = as_trained(image, dataset_info(data_cfg.name).dark_background, invert)
            return TestImageConverter(data_cfg)(image)[None], notes
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise ImageError(f"cannot read image {path}: {e.__class__.__name__}; give a PNG/JPEG/BMP image file") from None


def expand_image_paths(paths: list[str]) -> list[str]:
    """Files as given, folders replaced by the image files they hold (sorted)."""
    out = []
    for path in paths:
        if os.path.isdir(path):
            found = sorted(os.path.join(path, f) for f in os.listdir(path) if f.lower().endswith(IMAGE_SUFFIXES))
            if not found:
                raise ImageError(f"folder {path} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
            out += found
        else:
            out.append(path)
    return out
