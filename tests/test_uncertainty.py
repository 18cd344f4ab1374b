"""The uncertainty formulas against values worked out by hand."""
import math

import numpy as np
import pytest

from utils.uncertainty import (
    SCORE_NAMES,
    decompose,
    entropy,
    mutual_information,
    pass_probabilities,
    softmax_uncertainty,
    softplus_normalized,
    uncertainty_scores,
)


def inverse_softplus(s):
    """The logit whose softplus is s: log(e^s - 1)."""
    return np.log(np.expm1(s))


def test_softmax_decomposition_of_two_passes_by_hand():
    # p_bar = [0.6, 0.4]; mean p^2 = [(0.64 + 0.16) / 2, (0.04 + 0.36) / 2] = [0.4, 0.2]
    probs = np.array([[0.8, 0.2], [0.4, 0.6]])
    aleatoric, epistemic = softmax_uncertainty(probs)
    np.testing.assert_allclose(aleatoric, [0.6 - 0.4, 0.4 - 0.2])
    np.testing.assert_allclose(epistemic, [(0.2**2 + 0.2**2) / 2] * 2)
    # the sums add up to 1 - sum p_bar^2 = 1 - 0.36 - 0.16
    assert aleatoric.sum() + epistemic.sum() == pytest.approx(0.48)


def test_normalized_method_divides_softplus_by_its_sum():
    # softplus values [3, 1] and [1, 1] -> p_1 = [0.75, 0.25], p_2 = [0.5, 0.5]
    logits = inverse_softplus(np.array([[3.0, 1.0], [1.0, 1.0]]))
    np.testing.assert_allclose(softplus_normalized(logits), [[0.75, 0.25], [0.5, 0.5]])
    normalized = decompose(logits)["normalized"]
    aleatoric, epistemic = normalized["aleatoric"], normalized["epistemic"]
    # p_bar = [0.625, 0.375]; mean p^2 = [(0.5625 + 0.25) / 2, (0.0625 + 0.25) / 2] = [0.40625, 0.15625]
    np.testing.assert_allclose(aleatoric, [0.625 - 0.40625, 0.375 - 0.15625])
    np.testing.assert_allclose(epistemic, [0.125**2, 0.125**2])


def test_normalized_probabilities_stay_finite_for_extreme_logits():
    p = softplus_normalized(np.array([[1000.0, -1000.0, 0.0], [-2000.0, -2000.0, -2001.0]]))
    assert np.isfinite(p).all()
    # softplus(1000) = 1000, softplus(0) = log 2, softplus(-1000) ~ e^-1000
    np.testing.assert_allclose(p[0], np.array([1000.0, 0.0, math.log(2)]) / (1000 + math.log(2)), atol=1e-12)
    # far below zero softplus(x) ~ e^x, so the ratios follow e^x although each underflows
    np.testing.assert_allclose(p[1], np.array([1.0, 1.0, math.exp(-1)]) / (2 + math.exp(-1)))


def test_aleatoric_plus_epistemic_is_the_variance_of_a_one_hot_draw_from_p_bar():
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=3.0, size=(7, 5, 10))  # 7 passes, 5 inputs, 10 classes
    for method, part in decompose(logits).items():
        p_bar = pass_probabilities(logits, method).mean(axis=0)
        np.testing.assert_allclose(part["aleatoric"] + part["epistemic"], p_bar * (1 - p_bar), atol=1e-12)
        np.testing.assert_allclose(part["aleatoric_sum"] + part["epistemic_sum"], 1 - (p_bar**2).sum(axis=-1), atol=1e-12)
        assert (part["aleatoric"] >= 0).all() and (part["epistemic"] >= 0).all()


def test_entropy_and_mutual_information_by_hand():
    assert entropy(np.array([0.5, 0.5])) == pytest.approx(math.log(2))
    assert entropy(np.array([1.0, 0.0])) == pytest.approx(0.0)
    # two confident passes that disagree: all the uncertainty is disagreement
    assert mutual_information(np.array([[1.0, 0.0], [0.0, 1.0]])) == pytest.approx(math.log(2))
    # passes that agree carry no mutual information, however unsure each one is
    assert mutual_information(np.array([[0.5, 0.5], [0.5, 0.5]])) == pytest.approx(0.0)


def test_one_pass_has_no_epistemic_uncertainty():
    scores = uncertainty_scores(np.array([[[2.0, 0.0, -1.0]]]))  # T = 1, N = 1, C = 3
    assert scores["epistemic_softmax"][0] == pytest.approx(0.0)
    assert scores["epistemic_normalized"][0] == pytest.approx(0.0)
    assert scores["mutual_information"][0] == pytest.approx(0.0, abs=1e-12)


def test_scores_give_one_value_per_input():
    logits = np.array([[[4.0, 0.0], [0.0, 0.0]], [[4.0, 0.0], [3.0, -3.0]]])  # 2 passes over 2 inputs
    scores = uncertainty_scores(logits)
    assert set(scores) == set(SCORE_NAMES)
    assert all(values.shape == (2,) for values in scores.values())
    # input 0: both passes agree and are sure; input 1: they disagree
    assert scores["max_probability"][0] > scores["max_probability"][1]
    assert scores["mutual_information"][1] > scores["mutual_information"][0]
    assert scores["epistemic_softmax"][0] == pytest.approx(0.0)
