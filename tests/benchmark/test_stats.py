"""Leaderboard statistics checked against hand computations, not against the libraries they call."""

import math

import numpy as np
import pytest
from sklearn.metrics import f1_score

from benchmark.results.stats import (
    bootstrap_ci,
    compare_to_best,
    format_ci,
    holm_adjust,
    mcnemar_exact,
    mcnemar_from_counts,
    stratified_resample_indices,
    t_interval,
    worst_class_f1,
)


def exact_two_sided(b: int, c: int) -> float:
    """Exact McNemar p by the binomial formula: twice the smaller tail of Binomial(b + c, 1/2)."""
    n = b + c
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2**n
    return min(1.0, 2 * tail)


def predictions_at(accuracy: float, n: int, num_classes: int = 6, seed: int = 0):
    """Balanced labels and predictions right on exactly `accuracy` of them, wrong ones shifted by
    one class."""
    rng = np.random.default_rng(seed)
    y_true = np.arange(n) % num_classes
    y_pred = y_true.copy()
    wrong = rng.choice(n, size=round(n * (1 - accuracy)), replace=False)
    y_pred[wrong] = (y_true[wrong] + 1) % num_classes
    return y_true, y_pred


@pytest.mark.parametrize(
    "b, c, expected", [(0, 5, 0.0625), (1, 9, 0.021484375), (3, 7, 0.34375), (4, 4, 1.0)]
)
def test_mcnemar_matches_known_values(b, c, expected):
    assert exact_two_sided(b, c) == pytest.approx(expected)
    assert mcnemar_from_counts(b, c) == pytest.approx(expected)
    assert mcnemar_from_counts(c, b) == pytest.approx(expected)


def test_mcnemar_without_disagreements_is_one():
    assert mcnemar_from_counts(0, 0) == 1.0


def test_mcnemar_exact_counts_discordant_pairs():
    # 2 images only A gets right, 8 only B gets right, plus concordant ones that must not matter.
    correct_a = np.array([True] * 2 + [False] * 8 + [True] * 30 + [False] * 5)
    correct_b = np.array([False] * 2 + [True] * 8 + [True] * 30 + [False] * 5)
    assert mcnemar_exact(correct_a, correct_b) == pytest.approx(exact_two_sided(2, 8))
    assert mcnemar_exact(correct_a, correct_a) == 1.0


def test_mcnemar_exact_rejects_unpaired_arrays():
    with pytest.raises(ValueError, match="shape"):
        mcnemar_exact(np.ones(3, bool), np.ones(4, bool))


def test_holm_on_known_vector():
    np.testing.assert_allclose(holm_adjust([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])


def test_holm_is_capped_and_monotone_in_the_raw_order():
    adjusted = holm_adjust([0.5, 0.2, 0.9])
    np.testing.assert_allclose(adjusted, [1.0, 0.6, 1.0])


def test_holm_leaves_nan_out_of_the_family():
    adjusted = holm_adjust([0.01, np.nan, 0.04])
    assert np.isnan(adjusted[1])
    np.testing.assert_allclose(adjusted[[0, 2]], [0.02, 0.04])  # m = 2, not 3


def test_holm_of_nothing_is_empty():
    assert holm_adjust([]).shape == (0,)


def test_t_interval_matches_hand_computation():
    values = [0.80, 0.84, 0.82, 0.86]
    mean, std, low, high = t_interval(values)
    hand_std = math.sqrt(sum((v - 0.83) ** 2 for v in values) / 3)
    half = 3.182446305284263 * hand_std / 2  # t(0.975, df=3) from tables, / sqrt(4)
    assert mean == pytest.approx(0.83)
    assert std == pytest.approx(hand_std)
    assert (low, high) == pytest.approx((0.83 - half, 0.83 + half))


def test_t_interval_with_one_value_has_no_spread():
    mean, std, low, high = t_interval([0.9])
    assert mean == 0.9
    assert math.isnan(std) and math.isnan(low) and math.isnan(high)


def test_format_ci():
    assert format_ci(0.81234, 0.879) == "0.8123-0.8790"


def test_stratified_resample_keeps_every_class_size():
    y_true = np.array([0] * 5 + [1] * 20 + [2] * 3 + [5] * 12)
    rows = stratified_resample_indices(y_true, np.random.default_rng(1), n_resamples=50)
    assert rows.shape == (50, len(y_true))
    np.testing.assert_array_equal(y_true[rows], np.broadcast_to(y_true, rows.shape))
    assert len(np.unique(rows[:, y_true == 1])) > 1  # really resampled, not the identity


def test_bootstrap_contains_the_point_estimate_for_both_metrics():
    y_true, y_pred = predictions_at(0.85, 380)
    low, high = bootstrap_ci(y_true, y_pred)
    assert low < 0.85 < high
    macro = f1_score(y_true, y_pred, average="macro")
    low, high = bootstrap_ci(y_true, y_pred, "macro_f1", num_classes=6)
    assert low < macro < high


def test_bootstrap_shrinks_as_the_test_set_grows():
    small = bootstrap_ci(*predictions_at(0.85, 100))
    large = bootstrap_ci(*predictions_at(0.85, 1600))
    assert (large[1] - large[0]) < (small[1] - small[0]) / 2  # width ~ 1/sqrt(n): a quarter here


def test_bootstrap_is_reproducible_by_seed():
    y_true, y_pred = predictions_at(0.85, 380)
    assert bootstrap_ci(y_true, y_pred, seed=3) == bootstrap_ci(y_true, y_pred, seed=3)
    assert bootstrap_ci(y_true, y_pred, seed=3) != bootstrap_ci(y_true, y_pred, seed=4)


@pytest.mark.parametrize("num_classes", [None, 7])
def test_vectorised_macro_f1_matches_sklearn_resample_by_resample(num_classes):
    y_true, y_pred = predictions_at(0.6, 120)
    y_pred[:3] = 6  # a class predicted but never true
    y_pred[y_pred == 4] = 0  # a true class never predicted
    rows = stratified_resample_indices(y_true, np.random.default_rng(0), n_resamples=200)
    labels = None if num_classes is None else list(range(num_classes))
    values = [
        f1_score(y_true[r], y_pred[r], labels=labels, average="macro", zero_division=0)
        for r in rows
    ]
    tail = 0.025
    expected = tuple(np.quantile(values, [tail, 1 - tail]))
    got = bootstrap_ci(y_true, y_pred, "macro_f1", n_resamples=200, num_classes=num_classes)
    assert got == pytest.approx(expected)


def test_bootstrap_rejects_unknown_metric():
    with pytest.raises(ValueError, match="'top5'"):
        bootstrap_ci([0, 1], [0, 1], "top5")


def test_compare_to_best_separates_worse_tied_and_failed_rows():
    rng = np.random.default_rng(0)
    best = rng.random(400) < 0.9
    worse = best.copy()
    worse[np.flatnonzero(best)[:60]] = False  # 60 extra mistakes, no compensating wins
    results = compare_to_best([best, worse, best.copy(), None], best_index=0)
    assert results[0] == (1.0, True)
    p_worse, tied_worse = results[1]
    assert p_worse < 0.05 and not tied_worse
    assert results[2] == (1.0, True)
    assert math.isnan(results[3][0]) and results[3][1] is False


def test_compare_to_best_applies_holm_across_the_other_rows():
    best = np.ones(20, bool)
    one_off = best.copy()
    one_off[:5] = False  # b = 5, c = 0: raw p = 0.0625
    results = compare_to_best([one_off, best, one_off.copy()], best_index=1, alpha_level=0.1)
    assert [p for p, _ in results] == pytest.approx([0.125, 1.0, 0.125])  # 2 * 0.0625 each
    assert [tied for _, tied in results] == [True, True, True]


def test_worst_class_f1_names_the_weakest_class():
    y_true = np.array([0, 0, 1, 1, 2, 2])
    y_pred = np.array([0, 0, 1, 2, 2, 2])
    assert worst_class_f1(y_true, y_pred, 4) == (3, 0.0)  # a class absent everywhere scores 0
    index, f1 = worst_class_f1(y_true, y_pred, 3)
    assert index == 1 and f1 == pytest.approx(2 / 3)
