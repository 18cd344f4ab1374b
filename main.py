"""Command line of bbb-paddle: one config, one mode.

    python main.py --config conf/base.yaml --mode train|eval|pred|ood|export|infer [-o section.key=value ...]
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import utils.boot  # noqa: F401  first: MKL reads its setting when Paddle loads
from utils.config import load_config, translated_tree
from utils.errors import UserError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Bayes by Backprop and Bayesian CNNs in PaddlePaddle")
    parser.add_argument("--config", default="conf/base.yaml", help="YAML file in conf/ (default: conf/base.yaml)")
    parser.add_argument("--mode", choices=("train", "eval", "pred", "ood", "export", "infer", "prune"), help="what to do")
    parser.add_argument("--print-config", action="store_true", help="print the config in this project's keys (an earlier port's config translated) and stop")
    parser.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE", help="change one config key, e.g. -o train.num_epochs=3 (repeatable)")
    parser.add_argument("--weights", help="checkpoint for eval/pred/ood/export (default: eval.weights, else the run's best)")
    parser.add_argument("--resume", action="store_true", help="train: continue from the run's last-state checkpoint")
    parser.add_argument("--resume-with-changes", action="store_true", help="train: resume, applying changed training settings (lr, schedule, optimizer, prior) from the next epoch")
    parser.add_argument("--overwrite", action="store_true", help="train: start afresh where a run exists (the old one is moved aside, deleted once the new one has a best checkpoint)")
    parser.add_argument("--image", nargs="+", default=[], help="pred/infer: image files or folders; ood: extra folders of OOD images")
    parser.add_argument("--samples", type=int, help="pred/ood: Monte-Carlo passes per image (default: pred.samples / ood.samples)")
    parser.add_argument("--plot", action="store_true", help="pred/infer: one PNG per image; eval: reliability diagram (ood always draws its histograms)")
    parser.add_argument("--reject-threshold", type=float, metavar="T", help="pred/infer: answer 'uncertain' when pred.reject_score is above T (default: pred.reject_threshold)")
    parser.add_argument("--split", choices=("test", "valid"), help="eval/prune: score the test set or the seeded validation split (default: eval.split)")
    parser.add_argument("--save", action="store_true", help="prune: also write each pruned net as a checkpoint that eval, pred and export load")
    parser.add_argument("--json", action="store_true", help="print one JSON object with the results on stdout")
    return parser.parse_args(argv)


def _checked_image_options(args, mode: str) -> None:
    if args.samples is not None and args.samples < 1:
        raise UserError(f"--samples must be >= 1, got {args.samples}")
    if mode in ("pred", "infer") and not args.image:
        raise UserError(f"--mode {mode} needs --image FILE [FILE | FOLDER ...]")
    if args.reject_threshold is not None and not args.reject_threshold >= 0:
        raise UserError(f"--reject-threshold must be >= 0, got {args.reject_threshold}")


# Each mode's runner (cfg, args) -> result dict, imported only when it runs.
def _train(cfg, args):
    from train import train

    return train(cfg, resume=args.resume or args.resume_with_changes, overwrite=args.overwrite, resume_with_changes=args.resume_with_changes)


def _eval(cfg, args):
    from eval import evaluate

    return evaluate(cfg, weights=args.weights, plot=args.plot)


def _prune(cfg, args):
    from prune import prune

    return prune(cfg, weights=args.weights, samples=args.samples, plot=args.plot, save=args.save)


def _export(cfg, args):
    from export import export

    return export(cfg, weights=args.weights)


def _ood(cfg, args):
    from ood import run_ood

    _checked_image_options(args, "ood")
    return run_ood(cfg, weights=args.weights, samples=args.samples, image_folders=args.image)


def _pred(cfg, args):
    from predict import predict

    _checked_image_options(args, "pred")
    return {"predictions": predict(cfg, args.image, samples=args.samples, weights=args.weights, plot=args.plot, reject_threshold=args.reject_threshold)}


def _infer(cfg, args):
    from infer import infer_with_config

    if args.samples is not None:
        raise UserError("--mode infer runs the passes fixed at export; export again with -o export.samples=N")
    _checked_image_options(args, "infer")
    return {"predictions": infer_with_config(cfg, args.image, plot=args.plot, reject_threshold=args.reject_threshold)}


# Each mode's text for a terminal, from its result dict.
def _train_text(result: dict) -> str:
    where = (f"weights in {result['best_checkpoint']}" if os.path.isfile(result["best_checkpoint"])
             else f"its checkpoint {result['best_checkpoint']} is missing")
    if result["valid_images"] == 0:
        return f"no validation split (data.valid_size 0): the last of {result['epochs']} epochs kept; {where}"
    if "best_valid_nll" in result:  # regression: the best checkpoint has the lowest NLL
        return f"best valid NLL {result['best_valid_nll']:.4f} after {result['epochs']} epochs; {where}"
    return f"best valid accuracy {result['best_valid_acc']:.2f}% on {result['valid_images']} validation images after {result['epochs']} epochs; {where}"


def _eval_text(result: dict) -> str:
    if result.get("task") == "regression":
        from model.regression_eval import format_regression

        return format_regression(result) + (f"\nregression plot: {result['plot']}" if "plot" in result else "")
    lines = [f"weights {result['weights']}"]
    for kind, label in (("mc", f"Monte-Carlo ({result.get('mc', {}).get('samples')} samples)"), ("mean", "mean weights")):
        if kind in result:
            r = result[kind]
            lines.append(f"{result['split']} error {r['error']:.2f}% ({r['n']} images), NLL {r['nll']:.4f}, ECE {r['ece']:.2f}%, Brier {r['brier']:.4f}  [{label}]")
    return "\n".join(lines + ([f"reliability diagram: {result['plot']}"] if "plot" in result else []))


def _prune_text(result: dict) -> str:
    from prune import format_prune

    return format_prune(result)


def _ood_text(result: dict) -> str:
    from ood import format_table

    return format_table(result)


def _export_text(result: dict) -> str:
    forms = ", ".join(f"{form} ({spec['samples']} {'pass' if spec['samples'] == 1 else 'passes'})" for form, spec in result["forms"].items())
    return f"exported {forms} to {result['dir']}"


def _predictions_text(result: dict) -> str:
    from utils.answers import format_result

    return "\n".join(format_result(prediction) for prediction in result["predictions"])


def _config_text(result: dict) -> str:
    import yaml

    return yaml.safe_dump(result["config"], sort_keys=False).rstrip("\n")


MODES = {  # mode -> (runner, printer)
    "train": (_train, _train_text),
    "eval": (_eval, _eval_text),
    "pred": (_pred, _predictions_text),
    "ood": (_ood, _ood_text),
    "export": (_export, _export_text),
    "infer": (_infer, _predictions_text),
    "prune": (_prune, _prune_text),
}


def run(args: argparse.Namespace) -> dict:
    overrides = list(args.override) + ([f"eval.split={args.split}"] if args.split else [])
    notes: list[str] = []
    cfg = load_config(args.config, overrides, notes=notes)
    for line in notes:
        print(line, file=sys.stderr)
    if args.print_config:
        return {"mode": "config", "config": translated_tree(args.config) or cfg.to_dict()}
    if args.mode is None:
        raise UserError(f"give --mode {'|'.join(MODES)} (or --print-config)")
    runner, _ = MODES[args.mode]
    return {"mode": args.mode, **runner(cfg, args)}


def print_text(result: dict) -> None:
    printer = _config_text if result["mode"] == "config" else MODES[result["mode"]][1]
    print(printer(result))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        result = run(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the checkpoints written so far are intact; continue with --resume", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(result))
    else:
        print_text(result)
    if result["mode"] in ("pred", "infer") and any("error" in p for p in result["predictions"]):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
