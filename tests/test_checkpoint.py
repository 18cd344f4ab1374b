import os

import numpy as np
import paddle
import pytest

from model.nets import build_net
from utils.checkpoint import atomic_save, load_weights
from utils.errors import CheckpointError


def test_round_trip_gives_the_same_mean_predictions(small_cfg, tmp_path):
    cfg = small_cfg()
    net, other = build_net(cfg), build_net(cfg)
    path = str(tmp_path / "w.pdparams")
    atomic_save(net.state_dict(), path)
    load_weights(other, path)
    net.set_sampling(False)
    other.set_sampling(False)
    x = paddle.randn([2, 1, 28, 28])
    np.testing.assert_allclose(net(x)[0].numpy(), other(x)[0].numpy())


def test_bbb_weights_load_into_lrt_and_back(small_cfg, tmp_path):
    bbb, lrt = build_net(small_cfg("model.layer_type=bbb")), build_net(small_cfg("model.layer_type=lrt"))
    path = str(tmp_path / "bbb.pdparams")
    atomic_save(bbb.state_dict(), path)
    load_weights(lrt, path)
    for net in (bbb, lrt):
        net.set_sampling(False)
    x = paddle.randn([2, 1, 28, 28])
    np.testing.assert_allclose(bbb(x)[0].numpy(), lrt(x)[0].numpy(), rtol=1e-5)
    assert float(bbb.kl()) == pytest.approx(float(lrt.kl()), rel=1e-6)
    atomic_save(lrt.state_dict(), path)
    load_weights(build_net(small_cfg("model.layer_type=bbb")), path)


@pytest.mark.parametrize("other", ["model.hidden_units=16", "model.layer_type=freq", "model.name=lenet"])
def test_checkpoint_of_another_net_is_a_clear_error(small_cfg, tmp_path, other):
    path = str(tmp_path / "w.pdparams")
    atomic_save(build_net(small_cfg()).state_dict(), path)
    extra = [other, "data.input_size=32"] if "lenet" in other else [other]
    with pytest.raises(CheckpointError, match="does not match .*use the config it was trained with"):
        load_weights(build_net(small_cfg(*extra)), path)


def test_missing_or_damaged_checkpoint(small_cfg, tmp_path):
    net = build_net(small_cfg())
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_weights(net, str(tmp_path / "none.pdparams"))
    junk = tmp_path / "junk.pdparams"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_weights(net, str(junk))


def test_a_failed_write_keeps_the_previous_file(tmp_path):
    path = str(tmp_path / "w.pdparams")
    atomic_save({"a": paddle.ones([2])}, path)
    before = open(path, "rb").read()

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("disk full")

    with pytest.raises(Exception):
        atomic_save({"a": paddle.zeros([2]), "b": Unpicklable()}, path)
    assert open(path, "rb").read() == before
    assert os.listdir(tmp_path) == ["w.pdparams"]  # no temp file left behind


def test_weights_in_the_reference_naming_load_as_they_are_or_transposed(small_cfg, tmp_path):
    """The earlier port kept the reference code's names (W_mu, W_rho, bias_mu, bias_rho)."""
    import paddle

    from model.nets import build_net

    cfg = small_cfg()
    net = build_net(cfg)
    ours = {k: v.numpy() for k, v in net.state_dict().items()}
    reference = {k.replace("weight_mu", "W_mu").replace("weight_rho", "W_rho"): paddle.to_tensor(v) for k, v in ours.items()}
    assert "fc1.W_mu" in reference and "fc1.bias_rho" in reference
    torch_layout = {k: (v.T if k.endswith(("W_mu", "W_rho")) else v) for k, v in reference.items()}  # [out, in]
    for name, state in (("reference", reference), ("torch_layout", torch_layout)):
        path = str(tmp_path / f"{name}.pdparams")
        paddle.save(state, path)
        loaded = build_net(cfg)
        load_weights(loaded, path)
        for key, value in loaded.state_dict().items():
            np.testing.assert_array_equal(value.numpy(), ours[key], err_msg=f"{name} {key}")
