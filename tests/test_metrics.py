"""Detection and calibration metrics on small, checkable cases."""
import numpy as np
import pytest

from utils.metrics import auroc, average_precision, brier_score, expected_calibration_error, midranks, reliability_bins


def pairwise_auroc(labels, scores):
    """The definition: over all (positive, negative) pairs, 1 if the positive
    scores higher, 1/2 on a tie."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def test_midranks_share_the_rank_of_ties():
    np.testing.assert_allclose(midranks(np.array([10.0, 20.0, 10.0, 30.0])), [1.5, 3.0, 1.5, 4.0])


@pytest.mark.parametrize("seed", range(5))
def test_auroc_equals_the_pairwise_count_with_ties(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=40)
    labels[:2] = [0, 1]
    scores = rng.integers(0, 6, size=40).astype(float)  # few values: many ties
    assert auroc(labels, scores) == pytest.approx(pairwise_auroc(labels, scores))


def test_auroc_of_perfect_reversed_and_useless_scores():
    labels = np.array([0, 0, 1, 1])
    assert auroc(labels, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert auroc(labels, np.array([0.9, 0.8, 0.2, 0.1])) == 0.0
    assert auroc(labels, np.array([0.5, 0.5, 0.5, 0.5])) == 0.5


def test_average_precision_by_hand():
    # ranked by score: +, -, +, -  -> precision 1 at the first positive, 2/3 at the second
    labels = np.array([1, 0, 1, 0])
    scores = np.array([0.9, 0.8, 0.7, 0.1])
    assert average_precision(labels, scores) == pytest.approx((1 + 2 / 3) / 2)
    assert average_precision(labels, np.array([0.9, 0.1, 0.8, 0.2])) == 1.0


def test_average_precision_takes_tied_scores_as_one_threshold():
    # all four tied: one threshold, recall 1 at precision 1/2
    assert average_precision(np.array([1, 0, 1, 0]), np.zeros(4)) == pytest.approx(0.5)


def test_detection_needs_both_classes():
    with pytest.raises(ValueError, match="at least one positive and one negative"):
        auroc(np.ones(3), np.arange(3.0))


def test_perfectly_calibrated_predictions_have_zero_ece():
    # 10 answers at confidence 0.7 of which 7 right, 10 at 0.9 of which 9 right
    confidence = np.r_[np.full(10, 0.7), np.full(10, 0.9)]
    correct = np.r_[np.ones(7), np.zeros(3), np.ones(9), np.zeros(1)]
    assert expected_calibration_error(confidence, correct, bins=15) == pytest.approx(0.0)


def test_ece_weighs_each_bin_gap_by_its_share():
    # half the answers at confidence 1.0 with half of those right (gap 0.5),
    # half at 0.55 all right (gap 0.45): ECE = 0.5 * 0.5 + 0.5 * 0.45
    confidence = np.r_[np.full(4, 1.0), np.full(4, 0.55)]
    correct = np.r_[1, 1, 0, 0, np.ones(4)]
    assert expected_calibration_error(confidence, correct, bins=15) == pytest.approx(0.475)


def test_reliability_bins_are_equal_width_and_right_closed():
    table = reliability_bins(np.array([0.0, 0.1, 0.2, 0.21, 1.0]), np.array([1, 1, 0, 1, 1]), bins=5)
    np.testing.assert_allclose(table["edges"], [0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert table["count"].tolist() == [3, 1, 0, 0, 1]  # 0 and 0.2 fall in the first bin
    assert table["accuracy"][0] == pytest.approx(2 / 3) and np.isnan(table["accuracy"][2])


def test_brier_score():
    labels = np.array([0, 1])
    assert brier_score(np.array([[1.0, 0.0], [0.0, 1.0]]), labels) == 0.0
    assert brier_score(np.array([[0.0, 1.0], [1.0, 0.0]]), labels) == 2.0
    # uniform over 4 classes: (3/4)^2 + 3 (1/4)^2 = 0.75
    assert brier_score(np.full((2, 4), 0.25), labels) == pytest.approx(0.75)
