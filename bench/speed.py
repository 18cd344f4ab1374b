"""Training-step speed of the Bayesian nets against their deterministic twins.

    python bench/speed.py [--nets 2fc lenet] [--batch 128] [--steps 30] [--json]
    python bench/speed.py --nets 2fc -o model.prior.type=mixture   # any config key, as in main.py

For each net and layer type: median milliseconds per full training step
(forward, ELBO, backward, Adam) over --steps steps after --warmup, images per
second, the ratio to the deterministic ('freq') step of the same net measured
in the same run, Monte-Carlo evaluation throughput (images/s, --mc-samples
passes) and the peak resident memory. Each case runs in its own process so
that the peak memory is its own. Each net runs as its MNIST config sets it up
(input size, CPU threads): conf/base.yaml for 2fc, conf/mnist_<net>_bbb.yaml
for the others, with the layer type replaced.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = {"2fc": "base.yaml", "lenet": "mnist_lenet_bbb.yaml", "alexnet": "mnist_alexnet_bbb.yaml", "3conv3fc": "mnist_3conv3fc_bbb.yaml"}


def measure_one(net: str, layer_type: str, batch: int, steps: int, warmup: int, mc_samples: int, overrides: list[str]) -> dict:
    """Time one net in this process."""
    sys.path.insert(0, REPO)
    from utils.blas import STATUS as blas_status  # before Paddle loads
    import paddle

    from model.elbo import elbo_loss
    from model.mc import mc_log_probs
    from model.nets import build_net
    from model.optimizers import make_optimizer
    from utils.config import load_config
    from utils.runtime import cpu_share, seed_everything, set_device

    cfg = load_config(os.path.join(REPO, "conf", CONFIGS[net]), [f"model.layer_type={layer_type}", *overrides])
    device = set_device(cfg.device, cfg.threads)
    threads = cfg.threads or cpu_share()  # the count set_device set, for the table
    seed_everything(0)
    model = build_net(cfg)
    optimizer = make_optimizer(model, cfg.train.lr, cfg.train)
    size = cfg.data.input_size
    x = paddle.randn([batch, 1, size, size])
    y = paddle.randint(0, 10, [batch])

    def sync():
        if device == "gpu":
            paddle.device.cuda.synchronize()

    times = []
    for step in range(warmup + steps):
        sync()
        start = time.perf_counter()
        log_probs, kl = mc_log_probs(model, x, 1)
        loss = elbo_loss(log_probs, y, kl, 1 / 390, 390, 50000)
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()
        float(loss)
        sync()
        if step >= warmup:
            times.append(time.perf_counter() - start)

    model.eval()
    samples = mc_samples if model.is_bayesian else 1
    x_eval = paddle.randn([1000, 1, size, size])
    with paddle.no_grad():
        mc_log_probs(model, x_eval, samples)  # warm-up
        sync()
        start = time.perf_counter()
        float(mc_log_probs(model, x_eval, samples)[0].sum())
        sync()
        eval_seconds = time.perf_counter() - start

    median = statistics.median(times)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device == "gpu":
        peak_mb = paddle.device.cuda.max_memory_allocated() / 2**20
    return {
        "net": net,
        "layer_type": layer_type,
        "device": device,
        "paddle": paddle.__version__,
        "batch": batch,
        "threads": threads,
        "steps": steps,
        "ms_per_step": 1000 * median,
        "images_per_s": batch / median,
        "mc_eval_samples": samples,
        "mc_eval_images_per_s": 1000 / eval_seconds,
        "peak_memory_mb": peak_mb,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", nargs="+", default=["2fc", "lenet"], choices=sorted(CONFIGS))
    parser.add_argument("--layer-types", nargs="+", default=["freq", "bbb", "lrt"])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--mc-samples", type=int, default=10)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE", help="change a key of conf/base.yaml for every case (repeatable)")
    parser.add_argument("--one", nargs=2, metavar=("NET", "LAYER_TYPE"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.one:
        print(json.dumps(measure_one(*args.one, args.batch, args.steps, args.warmup, args.mc_samples, args.override)))
        return

    rows = []
    for net in args.nets:
        for layer_type in args.layer_types:
            cmd = [sys.executable, os.path.abspath(__file__), "--one", net, layer_type, "--batch", str(args.batch), "--steps", str(args.steps), "--warmup", str(args.warmup), "--mc-samples", str(args.mc_samples)] + [f"-o{o}" for o in args.override]
            done = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONWARNINGS="ignore"))
            if done.returncode:
                sys.exit(f"bench failed for {net}/{layer_type}:\n{done.stderr[-2000:]}")
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    freq = {r["net"]: r["ms_per_step"] for r in rows if r["layer_type"] == "freq"}
    for r in rows:
        r["ratio_to_freq"] = r["ms_per_step"] / freq[r["net"]] if r["net"] in freq else None

    if args.json:
        print(json.dumps({"overrides": args.override, "rows": rows}))
        return
    changed = f", {' '.join(args.override)}" if args.override else ""
    print(f"device {rows[0]['device']}, Paddle {rows[0]['paddle']}, batch {args.batch}, median of {args.steps} steps{changed}")
    print(f"{'net':8} {'layers':6} {'threads':>7} {'ms/step':>9} {'img/s':>9} {'x freq':>7} {'MC eval img/s':>14} {'peak MB':>8}")
    for r in rows:
        ratio = f"{r['ratio_to_freq']:.2f}" if r["ratio_to_freq"] else "-"
        print(f"{r['net']:8} {r['layer_type']:6} {r['threads']:>7} {r['ms_per_step']:9.1f} {r['images_per_s']:9.0f} {ratio:>7} {r['mc_eval_images_per_s']:14.0f} {r['peak_memory_mb']:8.0f}")


if __name__ == "__main__":
    main()
