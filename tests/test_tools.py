"""The helper scripts under tools/ and bench/."""
import os
import sys

import pytest
from conftest import REPO

sys.path.insert(0, os.path.join(REPO, "tools"))
sys.path.insert(0, os.path.join(REPO, "bench"))  # speed.py, imported where a test needs it (it loads Paddle)
from compare_runs import error_curve  # noqa: E402


def test_compare_runs_reads_both_log_layouts_and_keeps_a_resumed_epochs_last_line(tmp_path):
    log = tmp_path / "train.log"
    log.write_text(
        "2026-12-01 22:27:44,903 INFO epoch 1/325 lr 2.56e-01 | train loss 144.1 acc 80.42% kl 7171500.6 | valid loss 144.75 acc 91.72% nll 0.2663 | 81.3 s\n"
        "2026-12-01 22:28:44,903 INFO new best valid acc 91.7200: saved x.pdparams\n"
        "2026-12-01 22:29:44,903 INFO epoch 2/325 lr 2.56e-01 | train loss 140.0 acc 90.00% kl 7171500.6 | valid loss 140.00 acc 95.00% nll 0.2 | 20.0 s\n"
        "2026-12-02 03:39:36,245 INFO epoch 2/280 lr 1.28e-01 | train loss 121.5 nll 0.12 acc 96.51% kl 6070786.0 | valid loss 121.53 nll 0.1254 acc 96.75% | loss = NLL + 1 KL / N | 29.7 s\n"
    )
    epochs, errors = error_curve(str(log))
    assert epochs == [1, 2]
    assert errors == [100.0 - 91.72, 100.0 - 96.75]
    assert error_curve(str(log), "train") == ([1, 2], [100.0 - 80.42, 100.0 - 96.51])


def test_compare_runs_draws_the_training_error_of_a_run_without_validation(tmp_path):
    log = tmp_path / "all_60k.log"
    log.write_text(
        "2026-12-06 08:33:55,234 INFO epoch 1/325 lr 2.56e-01 | train loss 120.7769 nll 0.2253 acc 93.41% kl 7233108.8 | valid loss nan nll nan acc nan% | loss = NLL + 1 KL / N | 21.9 s\n"
        "2026-12-06 08:34:15,234 INFO epoch 2/325 lr 2.56e-01 | train loss 120.1 nll 0.1 acc 97.00% kl 7233108.8 | valid loss nan nll nan acc nan% | loss = NLL + 1 KL / N | 21.0 s\n"
        "2026-12-06 18:22:05,682 INFO epoch 3/325 lr 2.56e-01 | train loss 121.1 nll 0.17 acc 98.00% kl 7256087.0 | no validation split | loss = NLL + 1 KL / N | 18.8 s\n"
    )
    assert error_curve(str(log)) == ([], [])
    epochs, errors = error_curve(str(log), "train")
    assert epochs == [1, 2, 3] and errors == pytest.approx([6.59, 3.0, 2.0])


def test_bench_times_each_fused_posterior_operator():
    from speed import posterior_ops

    ops = posterior_ops(reps=1)
    if not ops:
        pytest.skip("the C++ operators do not build here (bench says so instead of timing them)")
    assert ops["weights"] == 784 * 1200 + 1200 * 1200 + 1200 * 10
    timed = {k: v for k, v in ops.items() if k not in ("weights", "threads")}
    assert set(timed) == {"noise", "gaussian draw and KL", "gaussian draw and KL, forward + backward", "mixture draw and KL",
                          "mixture draw and KL, forward + backward", "draw without a KL (evaluation)"}
    assert all(v > 0 for v in timed.values())


def test_bench_rows_are_the_median_round_and_ratios_compare_medians():
    from speed import combine_rounds

    def case(layer_type, ms):
        return {"net": "2fc", "layer_type": layer_type, "ms_per_step": ms, "images_per_s": 128 / ms * 1000}

    rounds = [[case("freq", 12.0), case("bbb", 30.0)],
              [case("freq", 18.0), case("bbb", 24.0)],  # a slow spell for freq alone
              [case("freq", 11.0), case("bbb", 25.0)]]
    freq, bbb = combine_rounds(rounds)
    assert freq["ms_per_step"] == 12.0 and freq["ms_rounds"] == [12.0, 18.0, 11.0]
    assert bbb["ms_per_step"] == 25.0 and bbb["images_per_s"] == 128 / 25.0 * 1000  # the figures of the median round
    assert bbb["ratio_to_freq"] == pytest.approx(25.0 / 12.0) and freq["ratio_to_freq"] == 1.0
    assert combine_rounds([rounds[1]])[1]["ratio_to_freq"] == pytest.approx(24.0 / 18.0)  # one round: that round's ratio


def test_learning_curves_of_a_run_without_validation_draw_only_the_training_curve(tmp_path, monkeypatch):
    import matplotlib.axes

    from utils.plots import plot_history

    drawn = []
    original = matplotlib.axes.Axes.plot
    monkeypatch.setattr(matplotlib.axes.Axes, "plot", lambda ax, *a, **kw: drawn.append(kw.get("label")) or original(ax, *a, **kw))
    nan = float("nan")
    history = {"epoch": [1, 2], "train_acc": [90.0, 95.0], "valid_acc": [nan, nan], "train_nll": [0.3, 0.2], "valid_nll": [nan, nan],
               "train_loss": [0.4, 0.3], "valid_loss": [nan, nan], "kl_weight": [1.0, 1.0]}
    paths = plot_history(history, str(tmp_path))
    assert all(os.path.isfile(p) for p in paths)
    assert drawn == ["train"] * len(paths)  # no empty "valid" line or legend entry
