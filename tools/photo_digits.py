"""How the shipped nets do on MNIST test digits as people would photograph them.

    python tools/photo_digits.py [--count 200] [--configs conf/mnist_2fc_best.yaml conf/mnist_lenet_best.yaml]

Writes the first --count test digits as PNGs four ways (as given, inverted to dark
on light, inverted at 200x200, a black digit on a transparent background) into a
temporary folder, runs --mode pred on each set with pred.invert auto and never,
and prints the accuracy of each: the README's table.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MNIST = os.path.join(os.path.expanduser("~"), ".cache", "paddle", "dataset", "mnist")


def write_sets(folder: str, count: int) -> tuple[dict, np.ndarray]:
    images = np.frombuffer(gzip.open(os.path.join(MNIST, "t10k-images-idx3-ubyte.gz")).read()[16:], np.uint8).reshape(-1, 28, 28)[:count]
    labels = np.frombuffer(gzip.open(os.path.join(MNIST, "t10k-labels-idx1-ubyte.gz")).read()[8:], np.uint8)[:count]
    sets = {}
    for name in ("as given", "inverted", "inverted 200x200", "transparent"):
        target = os.path.join(folder, name.replace(" ", "_"))
        os.makedirs(target)
        for i, digit in enumerate(images):
            if name == "as given":
                image = Image.fromarray(digit)
            elif name == "inverted":
                image = Image.fromarray(255 - digit)
            elif name == "inverted 200x200":
                image = Image.fromarray(255 - digit).resize((200, 200), Image.BILINEAR)
            else:
                rgba = np.zeros((28, 28, 4), np.uint8)
                rgba[..., 3] = digit
                image = Image.fromarray(rgba, "RGBA")
            image.save(os.path.join(target, f"{i:05d}.png"))
        sets[name] = target
    return sets, labels


def accuracy(config: str, folder: str, labels: np.ndarray, invert: str) -> float:
    cmd = [sys.executable, os.path.join(REPO, "main.py"), "--config", config, "--mode", "pred", "--json", "--image", folder, "-o", f"pred.invert={invert}"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, check=True)
    predictions = json.loads(done.stdout)["predictions"]
    return 100.0 * float(np.mean([p["class"] == int(y) for p, y in zip(predictions, labels)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--configs", nargs="+", default=["conf/mnist_2fc_best.yaml", "conf/mnist_lenet_best.yaml"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        sets, labels = write_sets(folder, args.count)
        print(f"accuracy on the first {args.count} MNIST test digits, pred.invert auto (never)")
        print(f"{'config':32} " + " ".join(f"{name:>22}" for name in sets))
        for config in args.configs:
            cells = [f"{accuracy(config, path, labels, 'auto'):6.1f} % ({accuracy(config, path, labels, 'never'):5.1f} %)" for path in sets.values()]
            print(f"{config:32} " + " ".join(f"{cell:>22}" for cell in cells))


if __name__ == "__main__":
    main()
