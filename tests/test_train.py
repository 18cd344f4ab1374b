import math
import os

import numpy as np
import paddle
import pytest

import train as train_module
from data import build_train_valid_loaders
from train import train
from utils.errors import TrainingDiverged
from utils.runtime import RunPaths


def _metrics(history):
    return {k: v for k, v in history.items() if k != "epoch_seconds"}


def test_one_epoch_writes_checkpoints_logs_scalars_and_plots(small_cfg):
    cfg = small_cfg("train.save_epochs=1")
    summary = train(cfg)
    paths = RunPaths(cfg)
    assert summary["epochs"] == 1 and 0 <= summary["best_valid_acc"] <= 100
    for path in (paths.best, paths.last, paths.periodic(1), paths.log_file):
        assert os.path.isfile(path), path
    assert os.listdir(paths.visualdl_dir)
    assert sorted(os.listdir(paths.image_dir)) == ["acc.png", "error.png", "loss.png", "nll.png"]
    log = open(paths.log_file).read()
    for field in ("avg_reader_cost", "avg_batch_cost", "avg_ips", "valid loss", "kl"):
        assert field in log


def test_training_lowers_the_loss_and_a_fixed_seed_repeats_it(small_cfg, tmp_path):
    cfg = small_cfg("train.num_epochs=3", "model.layer_type=lrt", "train.lr=0.003", "train.beta_type=0.01")
    first = train(cfg)["history"]
    assert first["train_loss"][-1] < first["train_loss"][0]
    assert first["valid_acc"][-1] > 35  # chance is 10 %; three seeds gave 47, 61 and 79 % on these few images
    again = train(cfg, overwrite=True)["history"]
    assert _metrics(again) == _metrics(first)


def test_resume_continues_at_the_next_epoch(small_cfg):
    train(small_cfg("train.num_epochs=1"))
    summary = train(small_cfg("train.num_epochs=3"), resume=True)
    assert summary["history"]["epoch"] == [1, 2, 3]
    lrs = summary["history"]["lr"]
    assert lrs[1] == pytest.approx(lrs[0] * 0.99) and lrs[2] == pytest.approx(lrs[0] * 0.99**2)
    assert "resumed from" in open(RunPaths(small_cfg()).log_file).read()


def test_a_run_resumed_inside_its_warmup_goes_on_climbing(small_cfg):
    train(small_cfg("train.num_epochs=1", "train.warmup_epochs=2", "train.lr_decay=0.5"))
    summary = train(small_cfg("train.num_epochs=4", "train.warmup_epochs=2", "train.lr_decay=0.5"), resume=True)
    lr = small_cfg().train.lr
    np.testing.assert_allclose(summary["history"]["lr"], [lr / 3, 2 * lr / 3, lr, lr / 2], rtol=1e-6)


def test_a_resumed_run_repeats_the_uninterrupted_one(small_cfg, tmp_path):
    uninterrupted = train(small_cfg("train.num_epochs=2", "run_name=whole"))
    train(small_cfg("train.num_epochs=1", "run_name=halves"))
    resumed = train(small_cfg("train.num_epochs=2", "run_name=halves"), resume=True)
    assert _metrics(resumed["history"]) == _metrics(uninterrupted["history"])
    whole = paddle.load(RunPaths(small_cfg("run_name=whole")).last)["model"]
    halves = paddle.load(RunPaths(small_cfg("run_name=halves")).last)["model"]
    for name in whole:
        np.testing.assert_array_equal(whole[name].numpy(), halves[name].numpy(), err_msg=name)


def test_valid_size_0_trains_on_every_image_and_keeps_the_last_epochs_weights(small_cfg):
    cfg = small_cfg("data.valid_size=0", "train.num_epochs=2")
    train_loader, valid_loader = build_train_valid_loaders(cfg)
    held_out, _ = build_train_valid_loaders(small_cfg())
    assert valid_loader is None and len(train_loader.dataset) == len(held_out.dataset) + 100
    summary = train(cfg)
    assert summary["valid_images"] == 0 and all(math.isnan(acc) for acc in summary["history"]["valid_acc"])
    paths = RunPaths(cfg)
    best, last = paddle.load(paths.best), paddle.load(paths.last)["model"]
    for name in last:  # nothing to choose by: the "best" checkpoint is the last epoch's
        np.testing.assert_array_equal(best[name].numpy(), last[name].numpy(), err_msg=name)
    log = open(paths.log_file).read()
    assert "no validation split (data.valid_size 0)" in log
    epoch_lines = [line for line in log.splitlines() if " epoch 2/2 " in line]
    assert len(epoch_lines) == 1 and "| no validation split |" in epoch_lines[0] and "nan" not in epoch_lines[0]


def test_resume_without_a_last_state_is_an_error(small_cfg):
    from utils.run_folder import RunFolderError

    with pytest.raises(RunFolderError, match="nothing to resume: .* does not exist; drop --resume"):
        train(small_cfg(), resume=True)


def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoints(small_cfg, monkeypatch):
    cfg = small_cfg()
    train(cfg)
    paths = RunPaths(cfg)
    saved = {p: open(p, "rb").read() for p in (paths.best, paths.last)}
    monkeypatch.setattr(train_module, "elbo_loss", lambda *args: paddle.to_tensor(float("nan")))
    with pytest.raises(TrainingDiverged, match="loss became nan at epoch 2, batch 1"):
        train(small_cfg("train.num_epochs=2"), resume=True)
    assert {p: open(p, "rb").read() for p in saved} == saved


def test_train_and_valid_losses_are_the_same_quantity_with_the_kl_weight_trained_with(small_cfg):
    summary = train(small_cfg("train.beta_type=0.005"))
    h = summary["history"]
    assert h["kl_weight"] == [pytest.approx(0.005)]
    assert h["valid_loss"][0] == pytest.approx(h["valid_nll"][0] + 0.005 * h["valid_kl"][0] / 500)
    assert abs(h["valid_loss"][0] - h["train_loss"][0]) < 1.0  # both about NLL; before, valid carried the whole KL


def test_base_yaml_is_blundells_protocol_and_trains_on_the_fixtures(small_cfg):
    import math

    cfg = small_cfg(config="conf/base.yaml")
    assert (cfg.train.optimizer, cfg.train.lr, cfg.train.batch_size, cfg.train.beta_type) == ("sgd", 0.256, 100, "Standard")
    assert (cfg.model.prior.type, cfg.model.prior.pi, cfg.model.posterior.init) == ("mixture", 0.75, "uniform")
    summary = train(cfg)
    assert summary["epochs"] == 1 and math.isfinite(summary["history"]["train_loss"][0]) and summary["history"]["kl_weight"] == [pytest.approx(1.0)]
