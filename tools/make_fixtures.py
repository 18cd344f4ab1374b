"""Build the small test fixtures under tests/fixtures/ from the shared data sets.

Why this exists: the full data sets live outside the repository, in ../shared/data
(about 46 MB of gzip'd MNIST-style IDX files). A clean clone has no ../shared, so the
tests use small fixtures that are committed to the repository instead. This script is
how those fixtures were made; re-running it gives byte-identical files (gzip and tar
headers carry mtime 0 and no file names, the RNG is seeded).

The CIFAR fixtures are synthetic: no CIFAR copy exists offline, so class-dependent
images are generated and written in the official python-version pickle layout.

Usage: python tools/make_fixtures.py [--shared PATH] [--out PATH]
Only the standard library, numpy and Pillow are used (no paddle import).
"""
from __future__ import annotations

import argparse
import gzip
import io
import pickle
import struct
import sys
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
IDX_NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
CIFAR10_NAMES = "airplane automobile bird cat deer dog frog horse ship truck".split()
CIFAR100_FINE = """apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy
bridge bus butterfly camel can castle caterpillar cattle chair chimpanzee clock cloud
cockroach couch crab crocodile cup dinosaur dolphin elephant flatfish forest fox girl
hamster house kangaroo keyboard lamp lawn_mower leopard lion lizard lobster man maple_tree
motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree pear pickup_truck
pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea seal
shark shrew skunk skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper
table tank telephone television tiger tractor train trout tulip turtle wardrobe whale
willow_tree wolf woman worm""".split()
CIFAR100_COARSE = """aquatic_mammals fish flowers food_containers fruit_and_vegetables
household_electrical_devices household_furniture insects large_carnivores
large_man-made_outdoor_things large_natural_outdoor_scenes large_omnivores_and_herbivores
medium_mammals non-insect_invertebrates people reptiles small_mammals trees vehicles_1
vehicles_2""".split()
assert len(CIFAR100_FINE) == 100 and len(CIFAR100_COARSE) == 20


def gzip_bytes(data: bytes) -> bytes:
    """Compress with a fixed header (mtime 0, no name) so the output is reproducible."""
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        gz.write(data)
    return buf.getvalue()


def write_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def read_idx(path: Path) -> np.ndarray:
    """Read a gzip'd IDX file of unsigned bytes into an array of its stored shape."""
    raw = gzip.decompress(path.read_bytes())
    magic, = struct.unpack_from(">I", raw, 0)
    if magic >> 8 != 0x08:  # third byte 0x08 = unsigned byte; the fourth is ndim
        raise ValueError(f"{path}: not a ubyte IDX file (magic {magic})")
    ndim = magic & 0xFF
    dims = struct.unpack_from(f">{ndim}I", raw, 4)
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as gzip'd IDX: magic 2049 for 1-D labels, 2051 for 3-D images."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    if len(array) % 100:  # paddle's MNIST reader parses in chunks of 100
        raise ValueError(f"{path}: count {len(array)} is not a multiple of 100")
    header = struct.pack(f">I{array.ndim}I", 0x0800 | array.ndim, *array.shape)
    write_file(path, gzip_bytes(header + array.tobytes()))


def subset_idx(src: Path, dst: Path, prefix: str, index: slice) -> None:
    """Copy one images/labels pair, keeping only the rows picked by index."""
    for kind in ("images-idx3", "labels-idx1"):
        name = f"{prefix}-{kind}-ubyte.gz"
        write_idx(dst / name, read_idx(src / name)[index])


def synthetic_images(rng: np.random.Generator, labels: list[int],
                     colours: np.ndarray) -> np.ndarray:
    """Class-dependent 32x32 RGB images (the class's base colour, a shading, blocky noise),
    flattened channel-major as in CIFAR: 1024 R, then 1024 G, then 1024 B values."""
    ramp = np.linspace(-25, 25, 32)[None, :, None]  # a horizontal shading, not a flat fill
    images = []
    for label in labels:
        # Noise on an 8x8 grid of 4x4 blocks: still varied, but it compresses ~6x better
        # than per-pixel noise, which keeps the committed archives small.
        noise = rng.normal(0, 20, size=(8, 8, 3)).repeat(4, axis=0).repeat(4, axis=1)
        img = colours[label][None, None, :] + ramp + noise
        img = np.clip(np.rint(img), 0, 255).astype(np.uint8)
        images.append(img.transpose(2, 0, 1).reshape(3072))  # HWC -> CHW, flatten
    return np.stack(images)


def tar_gz(members: dict[str, bytes]) -> bytes:
    """A tar.gz with sorted members, mtime 0 and uid/gid 0, so re-runs are identical."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name in sorted(members):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(members[name]), 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(members[name]))
    return gzip_bytes(buf.getvalue())


def cifar_batch(rng: np.random.Generator, batch_label: str, labels: list[int], colours: np.ndarray,
                label_key: str, extra: dict | None = None, first: int = 0) -> bytes:
    kind = batch_label.split()[0]  # "training" / "testing": keeps file names unique
    batch = {
        b"batch_label": batch_label.encode(),
        label_key.encode(): labels,
        b"data": synthetic_images(rng, labels, colours),
        b"filenames": [f"{kind}_{first + i:04d}_class{lab:02d}.png".encode()
                       for i, lab in enumerate(labels)],
    }
    batch.update(extra or {})
    return pickle.dumps(batch, protocol=2)


def write_cifar10(path: Path, rng: np.random.Generator,
                  per_batch: int = 12, n_test: int = 20) -> None:
    root, members = "cifar-10-batches-py", {}
    colours = rng.integers(30, 226, size=(10, 3))  # one base colour per class, all batches
    for b in range(5):  # labels cycle 0..9 so that every class appears in training
        labels = [(b * per_batch + i) % 10 for i in range(per_batch)]
        members[f"{root}/data_batch_{b + 1}"] = cifar_batch(
            rng, f"training batch {b + 1} of 5", labels, colours, "labels", first=b * per_batch)
    members[f"{root}/test_batch"] = cifar_batch(
        rng, "testing batch 1 of 1", [i % 10 for i in range(n_test)], colours, "labels")
    meta = {b"label_names": [n.encode() for n in CIFAR10_NAMES],
            b"num_cases_per_batch": per_batch, b"num_vis": 3072}
    members[f"{root}/batches.meta"] = pickle.dumps(meta, protocol=2)
    write_file(path, tar_gz(members))


def write_cifar100(path: Path, rng: np.random.Generator) -> None:
    # Synthetic coarse labels are simply fine // 5; the real CIFAR-100 grouping differs.
    colours = rng.integers(30, 226, size=(100, 3))  # shared by train and test
    def split(batch_label: str, fine: list[int]) -> bytes:
        coarse = {b"coarse_labels": [f // 5 for f in fine]}
        return cifar_batch(rng, batch_label, fine, colours, "fine_labels", coarse)

    root = "cifar-100-python"
    members = {
        f"{root}/train": split("training batch 1 of 1", list(range(100))),  # one per class
        f"{root}/test": split("testing batch 1 of 1", [2 * i for i in range(50)]),  # all coarse
        f"{root}/meta": pickle.dumps({
            b"fine_label_names": [n.encode() for n in CIFAR100_FINE],
            b"coarse_label_names": [n.encode() for n in CIFAR100_COARSE]}, protocol=2),
    }
    write_file(path, tar_gz(members))


def write_pngs(shared: Path, out: Path) -> None:
    """Single images for prediction tests: MNIST as is, one resized RGB, one notMNIST."""
    images = read_idx(shared / "mnist" / IDX_NAMES[2])
    labels = read_idx(shared / "mnist" / IDX_NAMES[3])
    out.mkdir(parents=True, exist_ok=True)
    for i in range(5):
        Image.fromarray(images[i], mode="L").save(out / f"mnist_{i}_{labels[i]}.png")
    big = Image.fromarray(images[0], mode="L").resize((64, 64), Image.Resampling.BILINEAR)
    big.convert("RGB").save(out / f"mnist_0_{labels[0]}_rgb64.png")
    letters = read_idx(shared / "notmnist" / IDX_NAMES[2])
    letter = "ABCDEFGHIJ"[read_idx(shared / "notmnist" / IDX_NAMES[3])[0]]
    Image.fromarray(letters[0], mode="L").save(out / f"notmnist_0_{letter}.png")


def check_inputs(shared: Path) -> None:
    """Fail early with one line naming the first missing path."""
    needed = [shared] + [shared / d / n for d in ("mnist", "fashion-mnist") for n in IDX_NAMES]
    needed += [shared / "notmnist" / n for n in IDX_NAMES[2:]]
    for path in needed:
        if not path.exists():
            print(f"make_fixtures: missing {path}", file=sys.stderr)
            sys.exit(2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=REPO / ".." / "shared" / "data")
    parser.add_argument("--out", type=Path, default=REPO / "tests" / "fixtures")
    args = parser.parse_args()
    shared, out = args.shared.resolve(), args.out.resolve()
    check_inputs(shared)

    subset_idx(shared / "mnist", out / "mnist", "train", slice(0, 600))
    subset_idx(shared / "mnist", out / "mnist", "t10k", slice(0, 200))
    subset_idx(shared / "fashion-mnist", out / "fashion-mnist", "train", slice(0, 200))
    subset_idx(shared / "fashion-mnist", out / "fashion-mnist", "t10k", slice(0, 200))
    # Every 50th image: the file is shuffled, so this picks all 10 letters A..J.
    subset_idx(shared / "notmnist", out / "notmnist", "t10k", slice(0, 10000, 50))

    rng = np.random.default_rng(0)  # one seeded stream for both CIFAR archives, in fixed order
    write_cifar10(out / "cifar" / "cifar-10-python.tar.gz", rng)
    write_cifar100(out / "cifar" / "cifar-100-python.tar.gz", rng)
    write_pngs(shared, out / "images")
    # The whole official MNIST test set (1.6 MB) as it is, so that the shipped
    # checkpoints can be scored on all 10,000 images on a clean clone.
    for name in IDX_NAMES[2:]:
        write_file(out / "mnist-test" / name, (shared / "mnist" / name).read_bytes())
    print(f"fixtures written to {out}")


if __name__ == "__main__":
    main()
