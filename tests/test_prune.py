"""--mode prune: Blundell's Table 2 on a net whose signal-to-noise ranking is known."""
import os

import numpy as np
import paddle
import pytest

from data import build_test_loader
from model.nets import build_net
from model.pruning import PRUNED_RHO, prune_masks, sparse_size, weight_snr
from prune import prune
from utils.checkpoint import atomic_save, load_weights
from utils.errors import ConfigError
from utils.runtime import RunPaths


def test_global_ranking_drops_the_lowest_snr_over_all_layers_and_per_layer_within_each():
    snr = {"a": np.array([[5.0, 1.0], [3.0, 0.5]]), "b": np.array([0.1, 4.0, 2.0, 0.2])}
    kept = prune_masks(snr, 0.5)
    # the four lowest of all eight: 0.1, 0.2, 0.5, 1.0
    assert kept["a"].tolist() == [[True, False], [True, False]] and kept["b"].tolist() == [False, True, True, False]
    per_layer = prune_masks(snr, 0.5, "per_layer")
    assert per_layer["a"].tolist() == [[True, False], [True, False]] and per_layer["b"].tolist() == [False, True, True, False]
    assert prune_masks(snr, 0.25, "per_layer")["a"].sum() == 3 and prune_masks(snr, 0.25)["a"].sum() == 4
    assert all(m.all() for m in prune_masks(snr, 0.0).values())


def _known_net(small_cfg):
    """A small 2fc whose SNR is set by hand: |mu| / sigma = the weight's index + 1."""
    cfg = small_cfg("model.hidden_units=8")
    net = build_net(cfg)
    for layer in (net.fc1, net.fc2, net.fc3):
        n = int(layer.weight_mu.size)
        sigma = np.full(layer.weight_mu.shape, 0.05)
        snr = np.random.default_rng(n).permutation(n).reshape(layer.weight_mu.shape) + 1.0
        sign = np.where(np.random.default_rng(n + 1).random(layer.weight_mu.shape) < 0.5, -1.0, 1.0)
        layer.weight_mu.set_value(paddle.to_tensor((sign * snr * sigma).astype("float32")))
        layer.weight_rho.set_value(paddle.to_tensor(np.log(np.expm1(sigma)).astype("float32")))
    return cfg, net


def _numpy_error(net, keep, loader) -> float:
    """The mean-weight net's test error computed here by hand, with pruned weights zeroed."""
    params = [(layer.weight_mu.numpy() * keep[name], layer.bias_mu.numpy()) for name, layer in (("fc1", net.fc1), ("fc2", net.fc2), ("fc3", net.fc3))]
    wrong = total = 0
    for images, labels in loader:
        h = images.numpy().reshape(len(labels), -1)
        for i, (w, b) in enumerate(params):
            h = h @ w + b
            h = np.maximum(h, 0) if i < 2 else h
        wrong += int((h.argmax(-1) != labels.numpy()).sum())
        total += len(labels)
    return 100.0 * wrong / total


def test_prune_removes_the_known_weights_and_scores_what_an_independent_forward_pass_gets(small_cfg, tmp_path):
    cfg, net = _known_net(small_cfg)
    snr = weight_snr(net)
    total = sum(v.size for v in snr.values())
    np.testing.assert_allclose(np.sort(snr["fc3"].ravel()), np.arange(1, snr["fc3"].size + 1), rtol=1e-4)
    weights = str(tmp_path / "known.pdparams")
    atomic_save(net.state_dict(), weights)

    result = prune(cfg, weights=weights, save=True)
    loader = build_test_loader(cfg)
    for row in result["rows"]:
        keep = prune_masks(snr, row["fraction"])
        assert row["kept_weights"] == sum(int(k.sum()) for k in keep.values()) == total - round(row["fraction"] * total)
        assert row["error_mean"] == pytest.approx(_numpy_error(net, keep, loader), abs=1e-9)
        assert row["biases"] == 8 + 8 + 10
    # with fc3's 80 weights of SNR 1..80 against fc1's 6,272: the 50 % cut takes fc3's lowest too
    half = prune_masks(snr, 0.5)
    threshold = np.sort(np.concatenate([v.ravel() for v in snr.values()]))[total // 2 - 1]
    assert all((snr[name][~k] <= threshold).all() and (snr[name][k] >= threshold).all() for name, k in half.items())

    # --save: a checkpoint the other modes load as it is, its pruned weights zero (below 1e-40) in every sample
    saved = next(r["saved"] for r in result["rows"] if r["fraction"] == 0.95)
    pruned = build_net(cfg)
    load_weights(pruned, saved)
    keep = prune_masks(snr, 0.95)["fc1"]
    assert (pruned.fc1.weight_mu.numpy()[~keep] == 0).all() and (pruned.fc1.weight_rho.numpy()[~keep] == PRUNED_RHO).all()
    pruned.set_sampling(True)
    drawn = pruned.fc1.draw()[0].numpy()
    assert (np.abs(drawn[~keep]) < 1e-40).all() and (np.abs(drawn[keep]) > 1e-6).all()


def test_sparse_size_counts_csr_values_indices_and_dense_biases(small_cfg):
    cfg, net = _known_net(small_cfg)
    masks = prune_masks(weight_snr(net), 0.75)
    size = sparse_size(net, masks)
    kept = sum(int(m.sum()) for m in masks.values())
    rows = 784 + 8 + 8  # the first axis of each weight [in, out]
    assert size.kept_weights == kept and size.bytes == kept * 12 + (rows + 3) * 4 + size.biases * 8


def test_a_deterministic_net_is_refused_with_the_reason(small_cfg):
    with pytest.raises(ConfigError, match="deterministic net .* has no sigma"):
        prune(small_cfg("model.layer_type=freq"))


def test_prune_plots_the_snr_density_and_the_weight_histograms(small_cfg, tmp_path):
    cfg, net = _known_net(small_cfg)
    atomic_save(net.state_dict(), RunPaths(cfg).best)
    twin_cfg = small_cfg("model.layer_type=freq", "model.hidden_units=8")
    twin = str(tmp_path / "twin.pdparams")
    atomic_save(build_net(twin_cfg).state_dict(), twin)
    result = prune(small_cfg("model.hidden_units=8", f"prune.freq_weights={twin}", "prune.fractions=[0.5,0.9]"), plot=True)
    assert [os.path.basename(p) for p in result["plots"]] == ["prune_snr.png", "prune_weights.png"]
    assert all(os.path.getsize(p) > 10_000 for p in result["plots"])
