"""--mode export and --mode infer: the saved inference models compute what the dygraph net computes."""
import json
import os

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest
import yaml

import main
from conftest import FIXTURES, REPO, small_overrides
from data import load_image
from export import export
from infer import ExportedModel
from model.mc import mc_logits
from model.nets import build_net
from utils.checkpoint import atomic_save, load_weights
from utils.config import load_config
from utils.runtime import seed_everything

IMAGES = os.path.join(FIXTURES, "images")
SAMPLES = 5  # passes in the exported mc model


def _overrides(run_dir, layer_type):
    # rho -2: sigma = softplus(-2) ~ 0.13, so that the passes differ clearly (an untrained net's default is ~0.007)
    return small_overrides(
        run_dir,
        f"model.layer_type={layer_type}",
        "model.posterior.rho_init=[-2.0,0.1]",
        f"eval.weights={run_dir / 'weights.pdparams'}",
        f"export.samples={SAMPLES}",
    )


@pytest.fixture(scope="module", params=["bbb", "lrt", "freq"])
def exported(request, tmp_path_factory):
    """An untrained net of each layer type, its weights saved, exported: (cfg, net, export result)."""
    run_dir = tmp_path_factory.mktemp(request.param)
    cfg = load_config(os.path.join(REPO, "conf", "bayescnn_base.yaml"), _overrides(run_dir, request.param))
    seed_everything(cfg.seed)
    atomic_save(build_net(cfg).state_dict(), cfg.eval.weights)
    result = export(cfg)
    net = build_net(cfg)
    load_weights(net, cfg.eval.weights)
    net.eval()
    return cfg, net, result


def _fixture_images() -> np.ndarray:
    names = sorted(os.listdir(IMAGES))
    data_cfg = load_config(os.path.join(REPO, "conf", "bayescnn_base.yaml")).data
    return np.concatenate([load_image(os.path.join(IMAGES, n), data_cfg) for n in names])


def test_export_writes_mc_and_mean_models_and_a_manifest(exported):
    cfg, net, result = exported
    forms = ["mean"] if cfg.model.layer_type == "freq" else ["mc", "mean"]
    assert sorted(result["forms"]) == sorted(forms)
    assert os.path.isdir(os.path.join(result["dir"], "mc")) == (cfg.model.layer_type != "freq")
    with open(os.path.join(result["dir"], "export.yaml"), encoding="utf-8") as f:
        manifest = yaml.safe_load(f)
    assert manifest["input_shape"] == [1, 28, 28] and manifest["num_classes"] == 10
    assert manifest["data"] == {"name": "mnist", "input_size": 28, "mean": [0.0], "std": [126.0]}
    assert manifest["forms"]["mean"]["samples"] == 1
    if "mc" in forms:
        assert manifest["forms"]["mc"]["samples"] == SAMPLES


def test_mean_model_gives_the_dygraph_mean_weight_probabilities(exported):
    cfg, net, result = exported
    model = ExportedModel(result["dir"], "mean")
    net.set_sampling(False)
    images = _fixture_images()
    for batch in (images[:1], images):  # the batch size is free
        probs, logits = model(batch)
        expected = F.softmax(net(paddle.to_tensor(batch))[0], axis=-1).numpy()
        assert logits.shape == (1, len(batch), 10)
        np.testing.assert_allclose(probs, expected, atol=1e-5)
        np.testing.assert_allclose(F.softmax(paddle.to_tensor(logits[0]), axis=-1).numpy(), expected, atol=1e-5)


def test_mc_model_matches_dygraph_monte_carlo_within_sampling_error(exported):
    cfg, net, result = exported
    if cfg.model.layer_type == "freq":
        pytest.skip("a deterministic net has no mc model")
    model = ExportedModel(result["dir"], "mc")
    net.set_sampling(True)
    images = _fixture_images()[:3]
    calls = 60
    exported_probs, exported_logits = zip(*(model(images) for _ in range(calls)))
    exported_probs, exported_logits = np.stack(exported_probs), np.stack(exported_logits)
    assert exported_logits.shape == (calls, SAMPLES, 3, 10)
    # the first output is the mean of the passes' softmax
    np.testing.assert_allclose(exported_probs, F.softmax(paddle.to_tensor(exported_logits), axis=-1).numpy().mean(axis=1), atol=1e-6)
    seed_everything(0)
    dygraph_logits = np.stack([mc_logits(net, paddle.to_tensor(images), SAMPLES).numpy() for _ in range(calls)])
    dygraph_probs = F.softmax(paddle.to_tensor(dygraph_logits), axis=-1).numpy().mean(axis=1)
    # Each call's mean is one draw; the two averages over `calls` draws differ by sampling
    # error only: within 5 standard errors for every image and class.
    standard_error = np.sqrt((exported_probs.var(axis=0) + dygraph_probs.var(axis=0)) / calls)
    assert standard_error.max() > 1e-3  # the passes really are random
    assert np.all(np.abs(exported_probs.mean(axis=0) - dygraph_probs.mean(axis=0)) <= 5 * standard_error + 1e-6)
    # every pass draws its own noise: the logits spread over passes like dygraph's
    ratio = exported_logits.std(axis=1).mean() / dygraph_logits.std(axis=1).mean()
    assert 0.85 < ratio < 1.15


def _main(capsys, *args):
    code = main.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _o(overrides):
    return [arg for item in overrides for arg in ("-o", item)]


def test_export_then_infer_answers_like_pred(tmp_path, capsys):
    # freq: pred's single pass and the mean model compute the same thing, so the answers can be compared exactly
    overrides = _o(_overrides(tmp_path, "freq"))
    cfg = load_config(os.path.join(REPO, "conf", "bayescnn_base.yaml"), _overrides(tmp_path, "freq"))
    atomic_save(build_net(cfg).state_dict(), cfg.eval.weights)
    code, out, err = _main(capsys, "--mode", "export", *overrides)
    assert code == 0, err
    assert out.startswith("exported mean (1 pass) to ")
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    code, out, err = _main(capsys, "--mode", "infer", "--json", "--plot", "--image", IMAGES, str(bad), *overrides)
    assert code == 1  # one file failed, the others were classified
    inferred = json.loads(out)["predictions"]
    assert "cannot read image" in inferred[-1]["error"] and "cannot read image" in err
    code, out, _ = _main(capsys, "--mode", "pred", "--json", "--image", IMAGES, *overrides)
    predicted = json.loads(out)["predictions"]
    assert len(inferred) == len(predicted) + 1 == len(os.listdir(IMAGES)) + 1
    for got, want in zip(inferred, predicted):
        assert os.path.getsize(got.pop("plot")) > 0
        assert got.keys() == want.keys() and got["class"] == want["class"] and got["samples"] == 1
        np.testing.assert_allclose(got["probabilities"], want["probabilities"], atol=1e-5)
    code, out, _ = _main(capsys, "--mode", "infer", "--reject-threshold", "0", "--image", IMAGES, *overrides)
    assert code == 0 and out.count("uncertain (entropy") == len(os.listdir(IMAGES))


def test_infer_runs_the_mc_model_with_its_exported_passes(exported, capsys):
    cfg, _, result = exported
    args = ["--mode", "infer", "--json", "--image", os.path.join(IMAGES, "mnist_0_7.png"), "-o", f"export.dir={result['dir']}"]
    code, out, err = _main(capsys, *args)
    assert code == 0, err
    [p] = json.loads(out)["predictions"]
    assert p["samples"] == (1 if cfg.model.layer_type == "freq" else SAMPLES) and sum(p["votes"]) == p["samples"]
    code, out, err = _main(capsys, *args, "-o", "export.infer_form=mean")
    assert json.loads(out)["predictions"][0]["samples"] == 1


def test_a_missing_export_is_a_one_line_error_naming_the_fix(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    code, _, err = _main(capsys, "--mode", "infer", "--image", IMAGES, "-o", f"export.dir={missing}")
    assert code == 2
    [line] = [line for line in err.splitlines() if line.startswith("error:")]
    assert str(missing) in line and "--mode export" in line
    missing.mkdir()
    (missing / "export.yaml").write_text("forms: [")
    code, _, err = _main(capsys, "--mode", "infer", "--image", IMAGES, "-o", f"export.dir={missing}")
    assert code == 2 and "damaged" in err and "--mode export" in err


@pytest.mark.parametrize("layer_type", ["bbb", "lrt"])
def test_conv_nets_with_the_mixture_prior_export_too(tmp_path, layer_type):
    # conv2d checks the weight's channels when traced, and the mixture's Monte-Carlo KL must stay out of the program
    cfg = load_config(
        os.path.join(REPO, "conf", "bayescnn_base.yaml"),
        _overrides(tmp_path, layer_type) + ["model.name=lenet", "data.input_size=32", "model.prior.type=mixture"],
    )
    net = build_net(cfg)
    atomic_save(net.state_dict(), cfg.eval.weights)
    result = export(cfg)
    images = np.random.default_rng(0).standard_normal((3, 1, 32, 32)).astype("float32")
    net.eval()
    net.set_sampling(False)
    probs, _ = ExportedModel(result["dir"], "mean")(images)
    np.testing.assert_allclose(probs, F.softmax(net.logits(paddle.to_tensor(images)), axis=-1).numpy(), atol=1e-5)
    _, logits = ExportedModel(result["dir"], "mc")(images)
    assert logits.shape == (SAMPLES, 3, 10) and not np.allclose(logits[0], logits[1])
