"""The command line end to end, as a user runs it, on the shipped fixtures."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import FIXTURES, REPO, small_overrides

IMAGES = os.path.join(FIXTURES, "images")


def run_cli(*args: str, tmp_path=None, overrides=None):
    config = [] if "--config" in args else ["--config", os.path.join(REPO, "conf", "bayescnn_base.yaml")]
    cmd = [sys.executable, os.path.join(REPO, "main.py"), *config, *args]
    for item in overrides if overrides is not None else small_overrides(tmp_path):
        cmd += ["-o", item]
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=300)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One epoch of training through the CLI; later tests eval and predict with it."""
    tmp_path = tmp_path_factory.mktemp("cli")
    done = run_cli("--mode", "train", "--json", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    return tmp_path, json.loads(done.stdout)


def test_train_prints_a_json_summary_and_writes_the_best_checkpoint(trained):
    tmp_path, summary = trained
    assert summary["mode"] == "train" and summary["epochs"] == 1
    assert os.path.isfile(summary["best_checkpoint"]) and summary["best_checkpoint"].endswith("model_best_bbb.pdparams")


def test_eval_scores_every_test_image_with_mc_and_mean_weights(trained):
    tmp_path, _ = trained
    done = run_cli("--mode", "eval", "--json", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    for kind in ("mc", "mean"):
        assert result[kind]["n"] == 200
        assert 0 <= result[kind]["error"] <= 100 and result[kind]["nll"] > 0
        assert result[kind]["error"] == pytest.approx(100 - result[kind]["acc"])
    text = run_cli("--mode", "eval", tmp_path=tmp_path)
    assert "test error" in text.stdout and "mean weights" in text.stdout


def test_eval_scores_the_validation_split_when_asked(trained):
    tmp_path, _ = trained
    overrides = small_overrides(tmp_path, "eval.split=valid")
    done = run_cli("--mode", "eval", "--json", overrides=overrides)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["split"] == "valid"
    for kind in ("mc", "mean"):
        assert result[kind]["n"] == 100  # data.valid_size: the images training held out
    text = run_cli("--mode", "eval", overrides=overrides)
    assert "valid error" in text.stdout and "test error" not in text.stdout


def test_pred_classifies_files_and_folders_and_reports_bad_files(trained, tmp_path):
    run_dir, _ = trained
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    done = run_cli("--mode", "pred", "--json", "--samples", "5", "--image", os.path.join(IMAGES, "mnist_0_7.png"), str(bad), IMAGES, tmp_path=run_dir)
    assert done.returncode == 1  # one file failed, the others were predicted
    predictions = json.loads(done.stdout)["predictions"]
    good = [p for p in predictions if "error" not in p]
    assert len(good) == 1 + len(os.listdir(IMAGES))
    for p in good:
        assert 0 <= p["class"] <= 9 and 0 < p["probability"] <= 1 and p["samples"] == 5
        assert sum(p["probabilities"]) == pytest.approx(1, abs=1e-4)
        assert len(p["top"]) == 3 and p["aleatoric"] >= 0 and p["epistemic"] >= 0
    [failed] = [p for p in predictions if "error" in p]
    assert "cannot read image" in failed["error"] and failed["path"] == str(bad)
    assert "cannot read image" in done.stderr


def test_eval_reports_calibration_and_draws_a_reliability_diagram(trained):
    tmp_path, _ = trained
    done = run_cli("--mode", "eval", "--plot", "--json", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    for kind in ("mc", "mean"):
        r = result[kind]
        assert 0 <= r["ece"] <= 100 and 0 <= r["brier"] <= 2  # ECE in percent, like the error
        assert len(r["reliability"]["count"]) == 15 and sum(r["reliability"]["count"]) == 200
    assert result["plot"] == str(tmp_path / "image" / "reliability.png") and os.path.getsize(result["plot"]) > 0


def test_pred_plots_each_image_and_answers_uncertain_above_the_threshold(trained):
    run_dir, _ = trained
    done = run_cli("--mode", "pred", "--json", "--plot", "--samples", "3", "--reject-threshold", "0", "--image", IMAGES, tmp_path=run_dir)
    assert done.returncode == 0, done.stderr
    for p in json.loads(done.stdout)["predictions"]:
        assert p["uncertain"] and p["reject"]["score"] == "entropy" and p["reject"]["value"] == pytest.approx(p["entropy"])
        assert os.path.getsize(p["plot"]) > 0 and os.path.dirname(p["plot"]) == str(run_dir / "image")
        assert sum(p["votes"]) == 3
        p_bar = np.array(p["probabilities"])
        for method in ("softmax", "normalized"):
            u = p["uncertainty"][method]
            assert len(u["aleatoric"]) == len(u["epistemic"]) == 10
            assert u["aleatoric_sum"] == pytest.approx(sum(u["aleatoric"]), abs=1e-9)
        softmax = p["uncertainty"]["softmax"]
        assert softmax["aleatoric_sum"] + softmax["epistemic_sum"] == pytest.approx(1 - (p_bar**2).sum(), abs=1e-6)
        assert softmax["aleatoric_sum"] == p["aleatoric"] and softmax["epistemic_sum"] == p["epistemic"]
    text = run_cli("--mode", "pred", "--image", IMAGES, tmp_path=run_dir, overrides=small_overrides(run_dir, "pred.reject_threshold=0"))
    assert text.stdout.count("uncertain (entropy") == len(os.listdir(IMAGES))


def _one_line_error(done, *fragments):
    assert done.returncode == 2
    lines = [line for line in done.stderr.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1, done.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_unknown_model_is_a_one_line_error(tmp_path):
    done = run_cli("--mode", "train", tmp_path=tmp_path, overrides=small_overrides(tmp_path, "model.name=resnet"))
    _one_line_error(done, "model.name must be one of 2fc, lenet, alexnet, 3conv3fc", "resnet")


def test_malformed_yaml_is_a_one_line_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {num_epochs: 3\n")
    _one_line_error(run_cli("--config", str(bad), "--mode", "train", tmp_path=tmp_path), "malformed YAML", "bad.yaml")


def test_missing_data_is_a_one_line_error(tmp_path):
    done = run_cli("--mode", "train", tmp_path=tmp_path, overrides=small_overrides(tmp_path, f"data.root={tmp_path}/nowhere"))
    _one_line_error(done, "missing data file", "nowhere/train-images-idx3-ubyte.gz")


def test_checkpoint_of_another_net_is_a_one_line_error(trained):
    run_dir, _ = trained
    done = run_cli("--mode", "eval", tmp_path=run_dir, overrides=small_overrides(run_dir, "model.hidden_units=16"))
    _one_line_error(done, "does not match 2fc/bbb", "use the config it was trained with")


def test_pred_without_images_is_a_one_line_error(trained):
    run_dir, _ = trained
    _one_line_error(run_cli("--mode", "pred", tmp_path=run_dir), "--mode pred needs --image")


def test_prune_prints_the_table_as_json_and_refuses_a_deterministic_net_in_one_line(trained):
    tmp_path, _ = trained
    done = run_cli("--mode", "prune", "--json", "--split", "valid", tmp_path=tmp_path, overrides=small_overrides(tmp_path, "prune.fractions=[0.0,0.5]"))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["split"] == "valid" and [r["fraction"] for r in result["rows"]] == [0.0, 0.5]
    assert result["rows"][1]["kept_weights"] == result["rows"][0]["kept_weights"] // 2
    done = run_cli("--mode", "prune", tmp_path=tmp_path, overrides=small_overrides(tmp_path, "model.layer_type=freq"))
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0 and "has no sigma" in done.stderr


def test_a_command_after_the_build_prints_no_build_or_ccache_lines_and_a_bad_config_one_line(tmp_path):
    run_cli("--mode", "eval", "--weights", "none.pdparams", tmp_path=tmp_path)  # builds the operators if no test did yet
    done = run_cli("--mode", "prune", "--weights", os.path.join(REPO, "checkpoints", "shipped", "mnist_2fc_lrt.pdparams"), tmp_path=tmp_path,
                   overrides=["prune.fractions=[0.5]", "model.layer_type=lrt", "eval.split=valid", f"data.root={os.path.join(FIXTURES, 'mnist')}", "data.valid_size=100"])
    assert done.returncode == 0, done.stderr
    assert not [line for line in done.stderr.splitlines() if "ccache" in line or "Compiling" in line or "building" in line or "custom operator" in line]
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  lrr: 1\n")
    done = run_cli("--config", str(bad), "--mode", "train", overrides=[])
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1


def test_the_earlier_ports_config_evaluates_shipped_weights_and_prints_its_translation(tmp_path):
    old = os.path.join(FIXTURES, "earlier_port", "base.yaml")
    done = run_cli("--config", old, "--print-config", overrides=[])
    assert done.returncode == 0 and "lr: 0.001" in done.stdout and "translated to this project's keys" in done.stderr
    shipped = os.path.join(REPO, "checkpoints", "shipped", "mnist_2fc_lrt.pdparams")
    done = run_cli("--config", old, "--mode", "eval", "--weights", shipped, overrides=[f"data.root={os.path.join(FIXTURES, 'mnist')}", "train.valid_ens=2"])
    assert done.returncode == 0, done.stderr
    assert "test error" in done.stdout and "(200 images)" in done.stdout


def test_a_shipped_config_works_from_another_folder(tmp_path):
    # eval.weights in the config is relative to the repository, not to where the command runs
    cmd = [sys.executable, os.path.join(REPO, "main.py"), "--config", os.path.join(REPO, "conf", "mnist_2fc_best.yaml"), "--mode", "eval", "--json",
           "-o", f"data.root={os.path.join(FIXTURES, 'mnist')}", "-o", "train.valid_ens=2"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300, env=dict(os.environ, PYTHONWARNINGS="ignore"))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["weights"] == os.path.join(REPO, "checkpoints", "shipped", "mnist_2fc_lrt.pdparams")


def test_the_training_summary_names_the_best_checkpoint_only_where_it_exists(tmp_path):
    import main

    best = tmp_path / "model_best_bbb.pdparams"
    result = {"best_valid_acc": 98.55, "valid_images": 10000, "epochs": 40, "best_checkpoint": str(best)}
    assert main._train_text(result).endswith(f"its checkpoint {best} is missing")  # a resumed run that never beat its old best, whose file is gone
    best.write_bytes(b"")
    assert main._train_text(result).endswith(f"weights in {best}")
