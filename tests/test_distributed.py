"""Data-parallel training with two CPU processes under paddle.distributed.launch."""
import json
import os
import subprocess
import sys

import paddle
import pytest

from conftest import REPO, small_overrides
from utils.checkpoint import load_file

# Two processes of 50 images per step against one of 100: the same total batch.
SETTINGS = ["model.layer_type=lrt", "model.hidden_units=64", "train.lr=0.003", "train.beta_type=0.01", "data.valid_size=200"]


def launch(tmp_path, processes: int, batch: int, *extra: str, resume: bool = False) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", str(processes), "--log_dir", str(tmp_path / "launch")]
    cmd += [os.path.join(REPO, "main.py"), "--config", os.path.join(REPO, "conf", "bayescnn_base.yaml"), "--mode", "train", "--json"] + (["--resume"] if resume else [])
    for item in small_overrides(tmp_path, *SETTINGS, f"train.batch_size={batch}", *extra):
        cmd += ["-o", item]
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=300)


def single(tmp_path, batch: int, *extra: str) -> dict:
    cmd = [sys.executable, os.path.join(REPO, "main.py"), "--config", os.path.join(REPO, "conf", "bayescnn_base.yaml"), "--mode", "train", "--json"]
    for item in small_overrides(tmp_path, *SETTINGS, f"train.batch_size={batch}", *extra):
        cmd += ["-o", item]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=dict(os.environ, PYTHONWARNINGS="ignore"), timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def history(tmp_path) -> dict:
    return load_file(str(tmp_path / "checkpoints" / "test" / "last_lrt.pdstate"))["history"]


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    """Three epochs on two processes, then resumed for a fourth."""
    tmp_path = tmp_path_factory.mktemp("dp")
    done = launch(tmp_path, 2, 50, "train.num_epochs=3")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    after_three = history(tmp_path)
    resumed = launch(tmp_path, 2, 50, "train.num_epochs=4", resume=True)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    return tmp_path, after_three


def test_two_processes_train_and_the_loss_falls(two_processes):
    tmp_path, after_three = two_processes
    h = after_three
    assert h["epoch"] == [1, 2, 3]
    assert h["train_loss"][-1] < h["train_loss"][0]
    assert h["valid_acc"][-1] > 50


def test_only_rank_0_writes_logs_and_checkpoints(two_processes):
    tmp_path, _ = two_processes
    assert sorted(os.listdir(tmp_path / "checkpoints" / "test")) == ["last_lrt.pdstate", "model_best_lrt.pdparams"]
    assert sorted(os.listdir(tmp_path / "logs")) == ["test.log", "visualdl"]
    assert len(os.listdir(tmp_path / "logs" / "visualdl" / "test")) == 2  # one record file per launch: the first and the resumed
    log = open(tmp_path / "logs" / "test.log").read()
    assert "2 processes x batch 50" in log
    assert log.count("epoch 1/3 ") == 1  # one line per epoch, not one per process
    rank1 = open(tmp_path / "launch" / "workerlog.1").read()
    assert "epoch 1/3" not in rank1


def test_validation_counts_every_image_once_over_both_processes(two_processes):
    tmp_path, _ = two_processes
    log = open(tmp_path / "logs" / "test.log").read()
    assert "(400 train, 200 valid samples)" in log  # 600 fixture images, 200 held out, each scored by one process
    acc = history(tmp_path)["valid_acc"]
    assert all(abs(a * 2 - round(a * 2)) < 1e-9 for a in acc)  # whole images out of 200: multiples of 0.5 %


def test_resume_continues_the_same_run(two_processes):
    tmp_path, after_three = two_processes
    h = history(tmp_path)
    assert h["epoch"] == [1, 2, 3, 4]
    assert h["train_loss"][:3] == after_three["train_loss"]
    assert h["lr"][3] == pytest.approx(after_three["lr"][0] * 0.99**3)


def test_two_processes_match_one_process_with_the_same_total_batch(two_processes, tmp_path):
    _, after_three = two_processes
    one = single(tmp_path, 100, "train.num_epochs=3")["history"]
    # The same number of steps with the same total batch; only the noise and the order of images differ.
    assert abs(one["valid_acc"][-1] - after_three["valid_acc"][-1]) < 6  # measured: 69.0 against 68.5
    assert one["train_loss"][-1] == pytest.approx(after_three["train_loss"][-1], rel=0.05)  # measured: 4.601 against 4.610
    assert paddle.distributed.get_world_size() == 1  # the test process itself stays single


def test_regression_with_a_learned_noise_trains_on_two_processes(tmp_path):
    # The learned noise std is a parameter too: DataParallel must average its gradient (it goes through forward()).
    cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2", "--log_dir", str(tmp_path / "launch")]
    cmd += [os.path.join(REPO, "main.py"), "--config", "conf/regression_toy.yaml", "--mode", "train", "--json"]
    for item in ("train.num_epochs=3", "data.toy.size=4000", f"output.checkpoint_dir={tmp_path}", f"output.log_dir={tmp_path}", f"output.image_dir={tmp_path}"):
        cmd += ["-o", item]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=dict(os.environ, PYTHONWARNINGS="ignore"), timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    h = load_file(str(tmp_path / "regression_toy" / "last_lrt.pdstate"))["history"]
    assert h["valid_nll"][-1] < h["valid_nll"][0]
    assert "gaussian.noise_rho" in load_file(str(tmp_path / "regression_toy" / "model_best_lrt.pdparams"))
