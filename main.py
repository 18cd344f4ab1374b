"""Command line of bbb-paddle: one config, one mode.

    python main.py --config conf/base.yaml --mode train|eval|pred|ood|export|infer [-o section.key=value ...]
"""
from __future__ import annotations

import argparse
import json
import sys

import utils.boot  # noqa: F401  first: MKL reads its setting when Paddle loads
from utils.config import load_config, translated_tree
from utils.errors import UserError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Bayes by Backprop and Bayesian CNNs in PaddlePaddle")
    parser.add_argument("--config", default="conf/base.yaml", help="YAML file in conf/ (default: conf/base.yaml)")
    parser.add_argument("--mode", choices=("train", "eval", "pred", "ood", "export", "infer", "prune"))
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


def run(args: argparse.Namespace) -> dict:
    overrides = list(args.override) + ([f"eval.split={args.split}"] if args.split else [])
    notes: list[str] = []
    cfg = load_config(args.config, overrides, notes=notes)
    for line in notes:
        print(line, file=sys.stderr)
    if args.print_config:
        return {"mode": "config", "config": translated_tree(args.config) or cfg.to_dict()}
    if args.mode is None:
        raise UserError("give --mode train|eval|pred|ood|export|infer|prune (or --print-config)")
    if args.mode == "train":
        from train import train

        summary = train(cfg, resume=args.resume or args.resume_with_changes, overwrite=args.overwrite, resume_with_changes=args.resume_with_changes)
        return {"mode": "train", **summary}
    if args.mode == "eval":
        from eval import evaluate

        return {"mode": "eval", **evaluate(cfg, weights=args.weights, plot=args.plot)}
    if args.mode == "prune":
        from prune import prune

        return {"mode": "prune", **prune(cfg, weights=args.weights, samples=args.samples, plot=args.plot, save=args.save)}
    if args.mode == "export":
        from export import export

        return {"mode": "export", **export(cfg, weights=args.weights)}
    if args.mode == "infer" and args.samples is not None:
        raise UserError("--mode infer runs the passes fixed at export; export again with -o export.samples=N")
    if args.samples is not None and args.samples < 1:
        raise UserError(f"--samples must be >= 1, got {args.samples}")
    if args.mode == "ood":
        from ood import run_ood

        return {"mode": "ood", **run_ood(cfg, weights=args.weights, samples=args.samples, image_folders=args.image)}
    if not args.image:
        raise UserError(f"--mode {args.mode} needs --image FILE [FILE | FOLDER ...]")
    if args.reject_threshold is not None and not args.reject_threshold >= 0:
        raise UserError(f"--reject-threshold must be >= 0, got {args.reject_threshold}")
    if args.mode == "infer":
        from infer import infer_with_config

        return {"mode": "infer", "predictions": infer_with_config(cfg, args.image, plot=args.plot, reject_threshold=args.reject_threshold)}
    from predict import predict

    predictions = predict(cfg, args.image, samples=args.samples, weights=args.weights, plot=args.plot, reject_threshold=args.reject_threshold)
    return {"mode": "pred", "predictions": predictions}


def print_text(result: dict) -> None:
    if result["mode"] == "config":
        import yaml

        print(yaml.safe_dump(result["config"], sort_keys=False), end="")
        return
    if result["mode"] == "train" and "best_valid_nll" in result:  # regression: the best checkpoint has the lowest NLL
        print(f"best valid NLL {result['best_valid_nll']:.4f} after {result['epochs']} epochs; weights in {result['best_checkpoint']}")
    elif result["mode"] == "train":
        print(f"best valid accuracy {result['best_valid_acc']:.2f}% on {result['valid_images']} validation images after {result['epochs']} epochs; weights in {result['best_checkpoint']}")
    elif result["mode"] == "eval" and result.get("task") == "regression":
        from regression import format_regression

        print(format_regression(result))
        if "plot" in result:
            print(f"regression plot: {result['plot']}")
    elif result["mode"] == "eval":
        for kind, label in (("mc", f"Monte-Carlo ({result.get('mc', {}).get('samples')} samples)"), ("mean", "mean weights")):
            if kind in result:
                r = result[kind]
                print(f"{result['split']} error {r['error']:.2f}% ({r['n']} images), NLL {r['nll']:.4f}, ECE {r['ece']:.2f}%, Brier {r['brier']:.4f}  [{label}]")
        if "plot" in result:
            print(f"reliability diagram: {result['plot']}")
    elif result["mode"] == "ood":
        from ood import format_table

        print(format_table(result))
    elif result["mode"] == "prune":
        from prune import format_prune

        print(format_prune(result))
    elif result["mode"] == "export":
        forms = ", ".join(f"{form} ({spec['samples']} {'pass' if spec['samples'] == 1 else 'passes'})" for form, spec in result["forms"].items())
        print(f"exported {forms} to {result['dir']}")
    else:
        from predict import format_result

        for prediction in result["predictions"]:
            print(format_result(prediction))


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
