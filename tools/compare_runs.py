"""Validation error of several training runs on one plot, read from their logs.

    python tools/compare_runs.py OUT.png LABEL=LOG [LABEL=LOG ...] [--ymax 4]

Each LOG is a training log (logs/<run_name>.log, or a copy in docs/runs/); the
validation accuracy of every epoch line is read, and where a resumed run logged
an epoch twice, the later line counts. The README's reproduction figure.
"""
from __future__ import annotations

import argparse
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from utils.plots import plot_curves  # noqa: E402

# "epoch 12/325 ... | valid loss 1.23 [nll 0.1 ]acc 97.50%": the valid section of a log line, in both layouts it has had
EPOCH_LINE = re.compile(r"epoch (\d+)/\d+ .*\| valid loss [-\d.e+]+ (?:nll [-\d.e+]+ )?acc ([\d.]+)%")


def valid_error(log: str) -> tuple[list[int], list[float]]:
    """(epochs, validation error in percent) of one log."""
    by_epoch = {}
    with open(log) as f:
        for line in f:
            match = EPOCH_LINE.search(line)
            if match:
                by_epoch[int(match.group(1))] = 100.0 - float(match.group(2))
    epochs = sorted(by_epoch)
    return epochs, [by_epoch[e] for e in epochs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("runs", nargs="+", help="LABEL=LOG")
    parser.add_argument("--ymax", type=float, default=4.0, help="top of the error axis, in percent")
    args = parser.parse_args()
    curves = {}
    for run in args.runs:
        label, _, log = run.partition("=")
        if not log or not os.path.isfile(log):
            parser.error(f"{run}: give LABEL=LOG with an existing log file")
        curves[label] = valid_error(log)
    print(plot_curves(args.out, curves, "validation error (%), 2 passes", ylim=(0.0, args.ymax)))


if __name__ == "__main__":
    main()
