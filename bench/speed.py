"""Training-step speed of the Bayesian nets against their deterministic twins.

    python bench/speed.py [--nets 2fc lenet] [--batch 128] [--steps 30] [--json]
    python bench/speed.py --nets 2fc -o model.prior.type=mixture   # any config key, as in main.py
    python bench/speed.py --nets 2fc lenet --epoch                 # also one whole training epoch of each config
    python bench/speed.py --nets 2fc --ops                         # also the fused posterior operators alone
    python bench/speed.py --rounds 5                               # each case 5 times, taking turns (default 3)

First the machine: CPU model and vendor, the path Paddle's MKL takes on it
(utils/blas.py) and the GFLOP/s of one 128x1200 @ 1200x1200 float32 product on
one thread.

For each net and layer type: median milliseconds per full training step
(forward, ELBO, backward, the config's optimizer) over --steps steps after
--warmup, images per second, the ratio to the deterministic ('freq') step of
the same net measured in the same run, Monte-Carlo evaluation throughput
(images/s, --mc-samples passes) and the peak resident memory. The cases take
turns for --rounds rounds (freq, bbb, lrt, freq, ...) and each row gives the
median of its rounds and their range, so that a slow spell of the machine falls
on every case alike instead of bending one ratio (single runs here spread by
up to a third). Each case runs in its own process so
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
sys.path.insert(0, REPO)
import utils.boot  # noqa: E402,F401  before Paddle loads
from model.layers.priors import PRIORS  # noqa: E402
from model.nets import LAYER_TYPES, NETS  # noqa: E402
def config_of(net: str) -> str:
    """The MNIST config a net is benched with: conf/base.yaml for 2fc, else conf/mnist_<net>_bbb.yaml."""
    return "base.yaml" if net == "2fc" else f"mnist_{net}_bbb.yaml"


def measure_one(net: str, layer_type: str, batch: int, steps: int, warmup: int, mc_samples: int, overrides: list[str]) -> dict:
    """Time one net in this process."""
    sys.path.insert(0, REPO)
    import utils.boot  # noqa: F401  before Paddle loads
    import paddle

    from model.elbo import elbo_loss
    from model.mc import mc_log_probs, mc_log_probs_and_kl
    from model.nets import build_net
    from model.optimizers import make_optimizer
    from utils.config import load_config
    from utils.cores import cpu_share
    from utils.runtime import prepare

    cfg = load_config(os.path.join(REPO, "conf", config_of(net)), [f"model.layer_type={layer_type}", *overrides])
    device, _ = prepare(cfg, seed=0, quiet=True)  # device, threads, allocator, seeds: as every mode sets them up
    threads = cfg.threads or cpu_share()  # the count prepare set, for the table
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
        log_probs, kl = mc_log_probs_and_kl(model, x, 1)
        loss = elbo_loss(log_probs, y, kl, 1 / 390, 390, 50000)
        loss.backward()
        optimizer.step()
        optimizer.clear_grad(set_to_zero=False)  # drop the gradients: no pass writing zeros over them
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
        float(mc_log_probs(model, x_eval, samples).sum())
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


def machine() -> dict:
    """CPU model and vendor, MKL's path and one product's GFLOP/s on one thread (in this process)."""
    sys.path.insert(0, REPO)
    from utils.blas import STATUS, cpu_vendor_and_flags
    import paddle

    paddle.set_device("cpu")
    paddle.base.core.set_num_threads(1)
    model = "unknown"
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    a, b = paddle.randn([128, 1200]), paddle.randn([1200, 1200])
    times = []
    for _ in range(30):
        start = time.perf_counter()
        float(paddle.matmul(a, b)[0, 0])
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times[5:])
    return {"cpu": model, "vendor": cpu_vendor_and_flags()[0] or "unknown", "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "blas": STATUS, "matmul_gflops_1thread": 2 * 128 * 1200 * 1200 / seconds / 1e9}


def posterior_ops(reps: int = 30) -> dict:
    """Milliseconds of the Bayesian step's elementwise work on 2fc-1200's weights, on
    this process's share of the cores, as a training step runs it: the noise, the
    fused draw and KL of each prior of PRIORS as conf/base.yaml sets it (forward, and
    forward + backward), and evaluation's draw without a KL. Where the C++ operators
    cannot run, an empty dict."""
    sys.path.insert(0, REPO)
    import paddle

    from model.layers import fused
    from model.layers.priors import build_prior
    from utils.config import load_config
    from utils.runtime import keep_freed_memory

    paddle.set_device("cpu")
    keep_freed_memory()  # as every mode runs: else each 9.6 MB output page-faults in afresh
    n = 784 * 1200 + 1200 * 1200 + 1200 * 10
    mu, rho, eps, grad_w = paddle.randn([n]) * 0.1, paddle.full([n], -3.0), paddle.randn([n]), paddle.randn([n])
    mu.stop_gradient = rho.stop_gradient = False
    if fused.standard_normal(mu, 0, 0) is None:
        return {}

    def ms(step) -> float:
        step()
        start = time.perf_counter()
        for _ in range(reps):
            step()
        return 1000 * (time.perf_counter() - start) / reps

    def forward_backward(op):
        w, kl = op()
        paddle.autograd.backward([w, kl], [grad_w, paddle.ones([])])
        mu.clear_gradient(set_to_zero=False)
        rho.clear_gradient(set_to_zero=False)

    result = {"weights": n, "threads": fused.threads(), "noise": ms(lambda: fused.standard_normal(mu, 0, 0))}
    for name in PRIORS:
        prior = build_prior(load_config(os.path.join(REPO, "conf", "base.yaml"), [f"model.prior.type={name}"]).model.prior)
        op = lambda prior=prior: prior.fused_sample_kl(mu, rho, eps)  # noqa: E731
        result[f"{name} draw and KL"] = ms(op)
        result[f"{name} draw and KL, forward + backward"] = ms(lambda op=op: forward_backward(op))
    with paddle.no_grad():
        result["draw without a KL (evaluation)"] = ms(lambda: fused.posterior_sample(mu, rho, eps))
    return result


def epoch_seconds(config: str, overrides: list[str]) -> dict:
    """One whole training epoch of `config` (train + validation) through main.py, in
    its own process: the epoch's seconds as the log gives them, the part of them that
    the training steps took, and the whole command's wall time (start-up, data, saves)."""
    import tempfile

    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, os.path.join(REPO, "main.py"), "--config", os.path.join(REPO, "conf", config), "--mode", "train", "--json",
               "-o", "train.num_epochs=1", "-o", "run_name=bench", "-o", f"output.checkpoint_dir={out}/c", "-o", f"output.log_dir={out}/l", "-o", f"output.image_dir={out}/i"]
        cmd += [f"-o{o}" for o in overrides]
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=dict(os.environ, PYTHONWARNINGS="ignore"))
        wall = time.perf_counter() - start
        if done.returncode:
            sys.exit(f"bench --epoch failed for {config}:\n{done.stderr[-2000:]}")
        history = json.loads(done.stdout.strip().splitlines()[-1])["history"]
        log = open(os.path.join(out, "l", "bench.log")).read()
    sys.path.insert(0, REPO)
    from utils.config import load_config

    cfg = load_config(os.path.join(REPO, "conf", config), overrides)
    steps = -(-(60000 - cfg.data.valid_size) // cfg.train.batch_size)  # MNIST's 60,000 training images
    batch_cost = float(log.split("avg_batch_cost ")[1].split(" s")[0])
    return {"config": config, "overrides": overrides, "epoch_s": history["epoch_seconds"][0], "train_steps_s": batch_cost * steps, "command_s": wall}


def combine_rounds(rounds: list[list[dict]]) -> list[dict]:
    """One row per case from the rounds' measurements of it (every round measures
    the same cases in the same order): the median of its rounds' ms/step (and the
    throughputs and memory of that median), every round's figure in ms_rounds, and
    the ratio to its net's deterministic step, median against median."""
    rows = []
    for runs in zip(*rounds):
        ordered = sorted(runs, key=lambda r: r["ms_per_step"])
        row = dict(ordered[(len(ordered) - 1) // 2])  # the lower median: a real round's figures
        row["ms_rounds"] = [r["ms_per_step"] for r in runs]
        rows.append(row)
    freq = {r["net"]: r["ms_per_step"] for r in rows if r["layer_type"] == "freq"}
    for r in rows:
        r["ratio_to_freq"] = r["ms_per_step"] / freq[r["net"]] if r["net"] in freq else None
    return rows


def epoch_cases(net: str) -> list[tuple[str, list[str]]]:
    """(config, overrides) of the --epoch table: 2fc with each prior, the others as configured.
    2fc holds the 10,000 validation images out, as the runs that chose base.yaml's
    settings did (base.yaml itself, the final fit, trains on all 60,000 and validates on none)."""
    if net == "2fc":
        return [("base.yaml", ["data.valid_size=10000", f"model.prior.type={prior}"]) for prior in PRIORS]
    return [(config_of(net), [])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", nargs="+", default=["2fc", "lenet"], choices=list(NETS))
    parser.add_argument("--layer-types", nargs="+", default=["freq", "bbb", "lrt"], choices=list(LAYER_TYPES))
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3, help="times each case is measured, the cases taking turns; rows give the median")
    parser.add_argument("--mc-samples", type=int, default=10)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE", help="change a key of conf/base.yaml for every case (repeatable)")
    parser.add_argument("--epoch", action="store_true", help="also time one whole training epoch of each net's config (2fc: both priors)")
    parser.add_argument("--ops", action="store_true", help="also time the fused posterior operators alone on 2fc-1200's weights")
    parser.add_argument("--machine", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ops-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--one", nargs=2, metavar=("NET", "LAYER_TYPE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error(f"--rounds must be 1 or more, got {args.rounds}")

    if args.machine:
        print(json.dumps(machine()))
        return
    if args.ops_only:
        print(json.dumps(posterior_ops()))
        return
    if args.one:
        print(json.dumps(measure_one(*args.one, args.batch, args.steps, args.warmup, args.mc_samples, args.override)))
        return

    done = subprocess.run([sys.executable, os.path.abspath(__file__), "--machine"], capture_output=True, text=True, env=dict(os.environ, PYTHONWARNINGS="ignore"))
    if done.returncode:
        sys.exit(f"bench failed reading the machine:\n{done.stderr[-2000:]}")
    host = json.loads(done.stdout.strip().splitlines()[-1])
    rounds = []
    for _ in range(args.rounds):
        one_round = []
        for net in args.nets:
            for layer_type in args.layer_types:
                cmd = [sys.executable, os.path.abspath(__file__), "--one", net, layer_type, "--batch", str(args.batch), "--steps", str(args.steps), "--warmup", str(args.warmup), "--mc-samples", str(args.mc_samples)] + [f"-o{o}" for o in args.override]
                done = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONWARNINGS="ignore"))
                if done.returncode:
                    sys.exit(f"bench failed for {net}/{layer_type}:\n{done.stderr[-2000:]}")
                one_round.append(json.loads(done.stdout.strip().splitlines()[-1]))
        rounds.append(one_round)
    rows = combine_rounds(rounds)

    epochs = [epoch_seconds(config, [*extra, *args.override]) for net in args.nets for config, extra in epoch_cases(net)] if args.epoch else []
    ops = {}
    if args.ops:
        done = subprocess.run([sys.executable, os.path.abspath(__file__), "--ops-only"], capture_output=True, text=True, env=dict(os.environ, PYTHONWARNINGS="ignore"))
        if done.returncode:
            sys.exit(f"bench --ops failed:\n{done.stderr[-2000:]}")
        ops = json.loads(done.stdout.strip().splitlines()[-1])

    if args.json:
        print(json.dumps({"machine": host, "overrides": args.override, "rows": rows, "epochs": epochs, "ops": ops}))
        return
    print(f"CPU {host['cpu']} ({host['vendor']}, {host['cores']} cores); {host['blas']}")
    print(f"one 128x1200 @ 1200x1200 float32 product on 1 thread: {host['matmul_gflops_1thread']:.1f} GFLOP/s")
    changed = f", {' '.join(args.override)}" if args.override else ""
    print(f"device {rows[0]['device']}, Paddle {rows[0]['paddle']}, batch {args.batch}, median of {args.steps} steps, median of {args.rounds} rounds{changed}")
    print(f"{'net':8} {'layers':6} {'threads':>7} {'ms/step':>9} {'rounds':>13} {'img/s':>9} {'x freq':>7} {'MC eval img/s':>14} {'peak MB':>8}")
    for r in rows:
        ratio = f"{r['ratio_to_freq']:.2f}" if r["ratio_to_freq"] else "-"
        spread = f"{min(r['ms_rounds']):.1f}-{max(r['ms_rounds']):.1f}"
        print(f"{r['net']:8} {r['layer_type']:6} {r['threads']:>7} {r['ms_per_step']:9.1f} {spread:>13} {r['images_per_s']:9.0f} {ratio:>7} {r['mc_eval_images_per_s']:14.0f} {r['peak_memory_mb']:8.0f}")
    if epochs:
        print("one training epoch (train + validation), seconds:")
        for e in epochs:
            steps = f", training steps {e['train_steps_s']:.1f}" if e["train_steps_s"] else ""
            print(f"  {e['config']} {' '.join(e['overrides'])}: epoch {e['epoch_s']:.1f}{steps}; whole command {e['command_s']:.1f}")
    if args.ops:
        if not ops:
            print("the fused operators cannot run here (no C++ build): the Paddle operators do this work")
        else:
            print(f"the fused posterior operators alone, {ops.pop('weights'):,} weights (2fc-1200), {ops.pop('threads')} threads, ms:")
            for name, value in ops.items():
                print(f"  {name:40} {value:6.2f}")


if __name__ == "__main__":
    main()
