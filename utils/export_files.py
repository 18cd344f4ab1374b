"""Where --mode export writes its inference models and what their files are called;
--mode infer reads them from there."""
from __future__ import annotations

import os

import paddle

from utils.runtime import RunPaths

MANIFEST = "export.yaml"
MODEL_PREFIX = "inference"  # paddle.jit.save names its files <prefix>.json / .pdmodel / .pdiparams
OUTPUTS = ["probabilities", "logits"]  # the programs' outputs, in this order


def export_dir(cfg) -> str:
    """export.dir, else <checkpoint_dir>/<run_name>/export_<layer_type> (beside the weights it comes from)."""
    return cfg.export.dir or os.path.join(RunPaths(cfg).checkpoint_dir, f"export_{cfg.model.layer_type}")


def model_files(form_dir: str) -> tuple[str, str] | None:
    """(program, parameters) paths saved by paddle.jit.save that this Paddle can read, or None.

    Paddle 3 writes the program as JSON (PIR) and reads it or Paddle 2's protobuf .pdmodel;
    Paddle 2 reads only .pdmodel (a JSON program crashes its predictor)."""
    params = os.path.join(form_dir, f"{MODEL_PREFIX}.pdiparams")
    major = int(paddle.__version__.split(".")[0])
    readable = (".json", ".pdmodel") if major >= 3 or major == 0 else (".pdmodel",)  # 0.0.0: a develop build
    for suffix in readable:
        program = os.path.join(form_dir, MODEL_PREFIX + suffix)
        if os.path.isfile(program) and os.path.isfile(params):
            return program, params
    return None
