"""Validation (or training) error of several training runs on one plot, read from their logs.

    python tools/compare_runs.py OUT.png LABEL=LOG [LABEL=LOG ...] [--ymax 4] [--split train]

Each LOG is a training log (logs/<run_name>.log, or a copy in docs/runs/); the
accuracy of every epoch line is read, and where a resumed run logged an epoch
twice, the later line counts. The README's reproduction figure. A run without a
validation split (data.valid_size 0) logs "no validation split" there and has
no validation curve: `--split train` draws the training error (one sample per
step, during the epoch) of every run instead.
"""
from __future__ import annotations

import argparse
import math
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from utils.plots import plot_curves  # noqa: E402

# "epoch 12/325 ... | train loss 1.2 [nll 0.1 ]acc 99.1% ... | valid loss 1.23 [nll 0.1 ]acc 97.50%":
# the train and valid sections of a log line, in both layouts it has had. A run without
# validation wrote "valid loss nan ... acc nan%" in older logs, "no validation split" now.
NUMBER = r"(?:[-\d.e+]+|nan)"
EPOCH_LINE = re.compile(r"epoch (\d+)/\d+ .*\| train loss ")
ACCURACY = {split: re.compile(rf"\| {split} loss {NUMBER} (?:nll {NUMBER} )?acc ({NUMBER})%") for split in ("train", "valid")}


def error_curve(log: str, split: str = "valid") -> tuple[list[int], list[float]]:
    """(epochs, error in percent on `split`) of one log; epochs without a figure (nan) are left out."""
    by_epoch = {}
    with open(log) as f:
        for line in f:
            epoch = EPOCH_LINE.search(line)
            if epoch:
                accuracy = ACCURACY[split].search(line)
                by_epoch[int(epoch.group(1))] = 100.0 - float(accuracy.group(1)) if accuracy else math.nan
    epochs = sorted(e for e in by_epoch if not math.isnan(by_epoch[e]))
    return epochs, [by_epoch[e] for e in epochs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("runs", nargs="+", help="LABEL=LOG")
    parser.add_argument("--ymax", type=float, default=4.0, help="top of the error axis, in percent")
    parser.add_argument("--split", choices=sorted(ACCURACY), default="valid", help="which error to draw (default valid)")
    args = parser.parse_args()
    curves = {}
    for run in args.runs:
        label, _, log = run.partition("=")
        if not log or not os.path.isfile(log):
            parser.error(f"{run}: give LABEL=LOG with an existing log file")
        curves[label] = error_curve(log, args.split)
        if not curves[label][0]:
            parser.error(f"{log}: no epoch line with a {args.split} accuracy (a run without validation: try --split train)")
    title = "validation error (%), 2 passes" if args.split == "valid" else "training error (%), during each epoch"
    print(plot_curves(args.out, curves, title, ylim=(0.0, args.ymax)))


if __name__ == "__main__":
    main()
