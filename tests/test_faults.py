"""Fault injection: what a crash, a torn file, a NaN, a full disk or a re-run leaves behind."""
import errno
import os
import signal
import subprocess
import sys

import numpy as np
import paddle
import pytest

import train as train_module
import utils.checkpoint as checkpoint_module
from conftest import REPO, small_overrides
from model.scoring import NonFiniteScore
from train import train
from utils.checkpoint import CheckpointError, atomic_save
from utils.resume import ResumeError
from utils.run_folder import RunFolderError, run_lock
from utils.runtime import RunPaths


def _weights(path):
    return {k: v.numpy() for k, v in paddle.load(path)["model"].items()}


def _same_weights(a, b):
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def _killed_run(tmp_path, kill_code: str, *extra: str) -> int:
    """Train 3 epochs in a child process that kills itself with SIGKILL where kill_code says."""
    argv = ["--config", os.path.join(REPO, "conf/bayescnn_base.yaml"), "--mode", "train"]
    for item in small_overrides(tmp_path, "train.num_epochs=3", "train.batch_size=50", *extra):
        argv += ["-o", item]
    code = f"""
import os, signal, sys
sys.path.insert(0, {REPO!r})
import utils.boot, main, train, utils.checkpoint
calls = {{"n": 0}}
def kill_now():
    os.kill(os.getpid(), signal.SIGKILL)
{kill_code}
sys.exit(main.main({argv!r}))
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300, env=dict(os.environ, PYTHONWARNINGS="ignore"))
    return done.returncode


@pytest.fixture
def uninterrupted(small_cfg):
    summary = train(small_cfg("train.num_epochs=3", "train.batch_size=50", "run_name=whole"))
    return _weights(summary["last_state"]), summary["history"]


@pytest.mark.parametrize("step", [12, 17, 23])  # steps of epoch 2 (10 steps an epoch)
def test_kill_9_mid_epoch_then_resume_ends_bit_identical(small_cfg, tmp_path, uninterrupted, step):
    kill = f"""
real = train.elbo_loss
def counted(*args):
    calls["n"] += 1
    if calls["n"] == {step}:
        kill_now()
    return real(*args)
train.elbo_loss = counted
"""
    assert _killed_run(tmp_path, kill) == -signal.SIGKILL
    cfg = small_cfg("train.num_epochs=3", "train.batch_size=50")
    resumed = train(cfg, resume=True)
    _same_weights(_weights(resumed["last_state"]), uninterrupted[0])
    assert [round(v, 6) for v in resumed["history"]["train_loss"]] == [round(v, 6) for v in uninterrupted[1]["train_loss"]]


def test_kill_9_during_a_state_write_leaves_the_old_state_and_the_stray_file_is_removed(small_cfg, tmp_path, uninterrupted):
    kill = """
real = utils.checkpoint.paddle.save
def torn(obj, path):
    if "last_" in path and "'epoch': 1" in repr({k: obj.get(k) for k in ("epoch",)} if isinstance(obj, dict) else {}):
        open(path, "wb").write(b"half a file")
        kill_now()
    return real(obj, path)
utils.checkpoint.paddle.save = torn
"""
    assert _killed_run(tmp_path, kill) == -signal.SIGKILL
    cfg = small_cfg("train.num_epochs=3", "train.batch_size=50")
    paths = RunPaths(cfg)
    strays = [f for f in os.listdir(paths.checkpoint_dir) if f.endswith(".tmp")]
    assert len(strays) == 1  # the write that was killed
    assert paddle.load(paths.last)["epoch"] == 0  # the state of epoch 1, whole
    resumed = train(cfg, resume=True)
    assert not [f for f in os.listdir(paths.checkpoint_dir) if f.endswith(".tmp")]
    _same_weights(_weights(resumed["last_state"]), uninterrupted[0])


def test_a_torn_last_state_says_the_best_checkpoint_is_intact(small_cfg):
    cfg = small_cfg()
    paths = RunPaths(train(cfg)["best_checkpoint"] and cfg)
    with open(paths.last, "wb") as f:
        f.write(b"\x80\x04 torn")
    with pytest.raises(CheckpointError, match=f"damaged.*the best checkpoint {paths.best} is intact.*--overwrite"):
        train(small_cfg("train.num_epochs=2"), resume=True)


def test_nan_weights_after_an_epochs_last_step_stop_the_run_and_nothing_of_that_epoch_is_saved(small_cfg, monkeypatch):
    cfg = small_cfg()
    train(cfg)
    paths = RunPaths(cfg)
    saved = {p: open(p, "rb").read() for p in (paths.best, paths.last)}
    real = train_module.train_one_epoch

    def blows_up_at_the_last_step(net, *args):
        result = real(net, *args)
        first = next(iter(net.parameters()))
        first.set_value(paddle.full_like(first, float("nan")))  # the last update gave NaN, its loss was finite
        return result

    monkeypatch.setattr(train_module, "train_one_epoch", blows_up_at_the_last_step)
    with pytest.raises(train_module.TrainingDiverged, match=r"epoch 2 ended with non-finite .*nothing of this epoch was saved \(the last good files are .*model_best_bbb.pdparams and .*last_bbb.pdstate\)"):
        train(small_cfg("train.num_epochs=2"), resume=True)
    assert {p: open(p, "rb").read() for p in saved} == saved


def test_a_nan_in_the_first_epoch_says_that_no_checkpoint_exists(small_cfg, monkeypatch):
    monkeypatch.setattr(train_module, "elbo_loss", lambda *args: paddle.to_tensor(float("nan")))
    with pytest.raises(train_module.TrainingDiverged, match="no checkpoint had been saved yet"):
        train(small_cfg())


def test_non_finite_weights_are_refused_by_every_mode_that_loads_them_and_a_nan_score_is_an_error(small_cfg, tmp_path):
    from model.nets import build_net, load_trained_net

    cfg = small_cfg()
    net = build_net(cfg)
    net.fc1.weight_mu.set_value(paddle.full_like(net.fc1.weight_mu, float("inf")))
    atomic_save(net.state_dict(), str(tmp_path / "inf.pdparams"))
    with pytest.raises(CheckpointError, match="non-finite weights .*fc1.weight_mu"):
        load_trained_net(cfg, str(tmp_path / "inf.pdparams"))
    # finite but enormous: the outputs overflow, and eval says so (exit status 2 through main.py)
    net.fc1.weight_mu.set_value(paddle.zeros_like(net.fc1.weight_mu))
    net.fc2.weight_mu.set_value(paddle.zeros_like(net.fc2.weight_mu))
    net.fc2.bias_mu.set_value(paddle.full_like(net.fc2.bias_mu, 3e38))  # every hidden unit 3e38
    signs = np.where(np.arange(32) % 2, 1.0, -1.0)[:, None] * np.ones((1, 10))
    net.fc3.weight_mu.set_value(paddle.to_tensor((3e38 * signs).astype("float32")))  # inf - inf: NaN logits
    atomic_save(net.state_dict(), str(tmp_path / "huge.pdparams"))
    done = subprocess.run([sys.executable, "main.py", "--config", "conf/bayescnn_base.yaml", "--mode", "eval", "--weights", str(tmp_path / "huge.pdparams"),
                           *sum((["-o", o] for o in small_overrides(tmp_path)), [])], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "error: scoring gave NLL nan" in done.stderr and "Traceback" not in done.stderr
    done = subprocess.run([sys.executable, "main.py", "--config", "conf/bayescnn_base.yaml", "--mode", "pred", "--weights", str(tmp_path / "huge.pdparams"),
                           "--image", os.path.join(REPO, "tests", "fixtures", "images", "mnist_0_7.png"), *sum((["-o", o] for o in small_overrides(tmp_path)), [])],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "are not finite" in done.stderr and "Traceback" not in done.stderr
    assert issubclass(NonFiniteScore, Exception)


def test_an_unwritable_output_folder_fails_before_any_work(small_cfg, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(RunFolderError, match=f"cannot write to the output folder {blocker}"):
        train(small_cfg(f"output.image_dir={blocker / 'image'}"))
    assert not os.path.exists(RunPaths(small_cfg()).best)


def test_a_full_disk_is_one_line_and_the_old_file_stays(small_cfg, tmp_path, monkeypatch):
    cfg = small_cfg()
    paths = RunPaths(cfg)
    train(cfg)
    before = open(paths.last, "rb").read()

    def full_disk(obj, path):
        with open(path, "wb") as f:
            f.write(b"part of it")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(checkpoint_module.paddle, "save", full_disk)
    with pytest.raises(CheckpointError, match="could not write .*No space left on device.*is intact"):
        train(small_cfg("train.num_epochs=2"), resume=True)
    assert open(paths.last, "rb").read() == before
    assert not [f for f in os.listdir(paths.checkpoint_dir) if f.endswith(".tmp")]


def test_a_second_training_into_a_run_is_refused_and_overwrite_keeps_the_old_one_until_a_new_best(small_cfg):
    cfg = small_cfg()
    paths = RunPaths(cfg)
    train(cfg)
    first_best = open(paths.best, "rb").read()
    with pytest.raises(RunFolderError, match="already holds a training .*--resume.*--overwrite.*run_name"):
        train(cfg)
    assert open(paths.best, "rb").read() == first_best
    summary = train(small_cfg("seed=7"), overwrite=True)
    log = open(paths.log_file).read()
    assert log.count("run test:") == 1 and "moved to" in log and "deleted the previous run" in log
    assert not os.path.exists(paths.checkpoint_dir + ".replaced")
    assert summary["epochs"] == 1


def test_two_trainings_into_one_folder_at_once_are_refused_and_a_stale_lock_is_taken_over(small_cfg):
    cfg = small_cfg()
    paths = RunPaths(cfg)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        os.makedirs(os.path.dirname(paths.checkpoint_dir), exist_ok=True)
        with open(paths.checkpoint_dir + ".lock", "w") as f:
            f.write(str(sleeper.pid))
        with pytest.raises(RunFolderError, match=f"being written by another training \\(pid {sleeper.pid}\\)"):
            train(cfg)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert train(cfg)["epochs"] == 1  # its owner is gone: the lock is stale
    with run_lock(paths.checkpoint_dir):
        assert open(paths.checkpoint_dir + ".lock").read() == str(os.getpid())
    assert not os.path.exists(paths.checkpoint_dir + ".lock")


def test_resume_refuses_a_changed_shape_before_any_work_and_a_changed_lr_unless_asked(small_cfg):
    train(small_cfg())
    with pytest.raises(ResumeError, match="cannot change the net .*model.hidden_units: 32 -> 16"):
        train(small_cfg("model.hidden_units=16", "train.num_epochs=2"), resume=True)
    with pytest.raises(ResumeError, match="train.lr: 0.001 -> 0.01.*--resume-with-changes"):
        train(small_cfg("train.lr=0.01", "train.num_epochs=2"), resume=True)
    summary = train(small_cfg("train.lr=0.01", "train.num_epochs=2"), resume=True, resume_with_changes=True)
    assert summary["history"]["lr"][1] == pytest.approx(0.01 * 0.99)  # the new schedule at epoch 2, not a hybrid
    assert "resuming with changed settings from epoch 2: train.lr: 0.001 -> 0.01" in open(RunPaths(small_cfg()).log_file).read()


def test_a_last_state_from_before_a_key_existed_resumes_as_if_it_held_the_default(small_cfg):
    from utils.resume import config_changes

    now = small_cfg().to_dict()
    trained = small_cfg().to_dict()
    del trained["train"]["warmup_epochs"]  # written by a version of the code without the key
    assert config_changes(trained, now) == ([], [])
    _, other = config_changes(trained, small_cfg("train.warmup_epochs=2").to_dict())
    assert other == ["train.warmup_epochs: 0 -> 2"]
