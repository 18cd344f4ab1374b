"""Out-of-distribution image sets, converted exactly like the in-distribution test images.

A set comes from a folder holding MNIST-format (IDX) test images
(`t10k-images-idx3-ubyte.gz`, the format of the notMNIST sample and of
Fashion-MNIST) or from a folder of image files of any size and colour. Labels
are not read: an OOD set's labels mean nothing to the net.
"""
from __future__ import annotations

import gzip
import logging
import os
from dataclasses import dataclass

import numpy as np
from PIL import Image

from data.datasets import TestImageConverter, expand_image_paths, load_image, paddle_cache_dir
from utils.errors import DataError, ImageError

IDX_IMAGE_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte")
IDX_IMAGES_MAGIC = 2051  # unsigned bytes, 3 dimensions

logger = logging.getLogger("bbb")


@dataclass(frozen=True)
class NamedSet:
    config_key: str    # the ood.* key that points at its folder
    cache_folder: str  # Paddle's folder under ~/.cache/paddle/dataset, used when the key is null


NAMED_SETS = {
    "notmnist": NamedSet("ood.notmnist_root", "notmnist"),
    "fashion_mnist": NamedSet("ood.fashion_root", "fashion-mnist"),
}


def named_set_folder(name: str, root: str | None) -> str:
    """The configured folder of a named set, or Paddle's cache folder when root is null."""
    return root or paddle_cache_dir(NAMED_SETS[name].cache_folder)


def read_idx_images(path: str) -> np.ndarray:
    """An IDX image file (gzip'd or not) -> uint8 array [N, H, W]."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"cannot read {path} ({type(e).__name__}: {e}); give an MNIST-format (IDX) image file") from None
    header = np.frombuffer(raw[:16], dtype=">u4") if len(raw) >= 16 else np.zeros(0)
    if header.size < 4 or header[0] != IDX_IMAGES_MAGIC:
        raise DataError(f"{path} is not an MNIST-format image file (IDX magic {IDX_IMAGES_MAGIC} expected)")
    n, h, w = (int(v) for v in header[1:4])
    if len(raw) - 16 < n * h * w:
        raise DataError(f"{path} is truncated: the header announces {n} images of {h}x{w} pixels")
    return np.frombuffer(raw, dtype=np.uint8, count=n * h * w, offset=16).reshape(n, h, w)


def _idx_file(folder: str) -> str | None:
    return next((os.path.join(folder, f) for f in IDX_IMAGE_FILES if os.path.isfile(os.path.join(folder, f))), None)


def _load_image_folder(folder: str, data_cfg) -> list[np.ndarray]:
    """Every readable image file in folder (maybe none); unreadable ones are logged and skipped."""
    try:
        paths = expand_image_paths([folder])
    except ImageError:  # no file with an image suffix
        return []
    arrays, skipped = [], []
    for path in paths:
        try:
            arrays.append(load_image(path, data_cfg)[0])
        except ImageError:
            skipped.append(path)
    if skipped:
        logger.warning("skipped %d unreadable file(s) in %s: %s", len(skipped), folder, ", ".join(skipped[:3]) + (" ..." if len(skipped) > 3 else ""))
    return arrays


def load_ood_images(folder: str, data_cfg, what: str = "OOD set", hint: str = "") -> np.ndarray:
    """The images of one OOD folder as net inputs [N, C, H, W] (float32).

    `what` names the set in errors (e.g. "ood set notmnist"), `hint` says how to fix a missing folder."""
    hint = f"; {hint}" if hint else ""
    if os.path.isfile(folder):
        raise DataError(f"{what}: {folder} is a file; an OOD set is a folder holding {IDX_IMAGE_FILES[0]} or image files")
    if not os.path.isdir(folder):
        raise DataError(
            f"{what}: folder {folder} not found; expected {os.path.join(folder, IDX_IMAGE_FILES[0])} or image files there{hint}"
        )
    idx = _idx_file(folder)
    if idx is None:
        arrays = _load_image_folder(folder, data_cfg)
        if not arrays:
            raise DataError(
                f"{what}: no readable images in {folder}; expected {os.path.join(folder, IDX_IMAGE_FILES[0])} or image files (PNG/JPEG/...){hint}"
            )
        return np.stack(arrays)
    images = read_idx_images(idx)
    if images.shape[0] == 0:
        raise DataError(f"{what}: {idx} holds no images")
    convert = TestImageConverter(data_cfg)
    return np.stack([convert(Image.fromarray(image)) for image in images])
