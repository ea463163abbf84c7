"""Calibration figures on hand-made probabilities whose answers are known
(benchmark/training/calibration.py)."""

import numpy as np
import pytest

from benchmark.training.calibration import (
    apply_temperature,
    brier_score,
    calibration_summary,
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
    reliability_bins,
)


def two_class(confidence: float, n: int, n_correct: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` images all predicting class 0 with `confidence`, of which the first `n_correct` are class
    0."""
    probs = np.tile([confidence, 1 - confidence], (n, 1))
    return probs, np.array([0] * n_correct + [1] * (n - n_correct))


def test_bins_that_are_right_as_often_as_they_say_have_zero_ece():
    a, ya = two_class(0.7, 10, 7)
    b, yb = two_class(0.9, 20, 18)
    assert expected_calibration_error(np.vstack([a, b]), np.concatenate([ya, yb])) == pytest.approx(
        0.0, abs=1e-12
    )


def test_an_overconfident_model_has_the_gap_as_its_ece():
    probs, labels = two_class(0.9, 10, 6)  # says 0.9, right 0.6 of the time
    assert expected_calibration_error(probs, labels) == pytest.approx(0.3)
    # Two bins weighted by their share of images: 10 images off by 0.3, 30 images off by 0.1
    # (underconfident).
    under, y_under = two_class(0.6, 30, 21)
    both = expected_calibration_error(np.vstack([probs, under]), np.concatenate([labels, y_under]))
    assert both == pytest.approx(10 / 40 * 0.3 + 30 / 40 * 0.1)


def test_bins_are_fifteen_equal_width_and_right_inclusive():
    # Confidences on both sides of the 0.6 edge (bin 9 is (8/15, 9/15]) and a certain answer in the
    # last bin.
    probs = np.array([[0.6, 0.4], [0.61, 0.39], [1.0, 0.0]])
    table = reliability_bins(probs, [0, 0, 0])
    assert len(table["count"]) == 15 and table["edges"][0] == 0 and table["edges"][-1] == 1
    assert (
        table["count"][8] == 1
        and table["count"][9] == 1
        and table["count"][14] == 1
        and table["count"].sum() == 3
    )
    assert np.isnan(table["accuracy"][0]) and table["accuracy"][14] == 1.0


def test_brier_is_the_summed_squared_error_per_image():
    assert brier_score(np.array([[1.0, 0.0]]), [0]) == 0.0
    assert brier_score(np.array([[0.0, 1.0]]), [0]) == 2.0
    assert brier_score(np.full((3, 4), 0.25), [0, 1, 2]) == pytest.approx(0.75**2 + 3 * 0.25**2)


def test_nll_is_the_mean_negative_log_probability_of_the_truth():
    probs = np.array([[0.5, 0.5], [0.25, 0.75], [1.0, 0.0]])
    assert negative_log_likelihood(probs, [0, 1, 0]) == pytest.approx(
        -(np.log(0.5) + np.log(0.75) + 0) / 3
    )
    assert np.isfinite(negative_log_likelihood(probs, [0, 1, 1]))  # p = 0 is floored, not -log 0


def test_temperature_never_changes_the_predicted_class():
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(6) * 0.5, size=500)
    for temperature in (0.05, 0.5, 1.0, 3.0, 50.0):
        scaled = apply_temperature(probs, temperature)
        assert np.array_equal(scaled.argmax(1), probs.argmax(1))
        assert np.allclose(scaled.sum(1), 1.0)
    assert np.allclose(apply_temperature(probs, 1.0), probs)
    with pytest.raises(ValueError, match="temperature"):
        apply_temperature(probs, 0.0)


@pytest.mark.parametrize("true_temperature", [2.5, 0.5])
def test_fitted_temperature_recovers_the_one_the_labels_were_drawn_with(true_temperature):
    """The model says softmax(z); the world draws labels from softmax(z / T0): fitting must find
    T0."""
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (20000, 6))
    model = np.exp(logits - logits.max(1, keepdims=True))
    model /= model.sum(1, keepdims=True)
    world = apply_temperature(model, true_temperature)
    labels = np.array([rng.choice(6, p=row) for row in world])
    fitted = fit_temperature(model, labels)
    assert fitted == pytest.approx(true_temperature, rel=0.05)
    assert negative_log_likelihood(
        apply_temperature(model, fitted), labels
    ) < negative_log_likelihood(model, labels)
    assert expected_calibration_error(apply_temperature(model, fitted), labels) < 0.02
    assert expected_calibration_error(model, labels) > 0.05


def test_summary_fits_on_validation_only_and_reports_both_splits():
    rng = np.random.default_rng(2)
    logits = rng.normal(0, 3, (4000, 3))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = np.array([rng.choice(3, p=row) for row in apply_temperature(probs, 2.0)])
    val, test = slice(0, 2000), slice(2000, 4000)
    summary = calibration_summary(
        {"val": probs[val], "test": probs[test]}, {"val": labels[val], "test": labels[test]}
    )
    assert (
        summary["temperature"] == fit_temperature(probs[val], labels[val])
        and summary["fitted_on"] == "val"
    )
    assert summary["bins"] == 15 and set(summary["test"]) == {
        "ece",
        "brier",
        "nll",
        "ece_scaled",
        "brier_scaled",
        "nll_scaled",
    }
    assert summary["test"]["ece"] == pytest.approx(
        expected_calibration_error(probs[test], labels[test])
    )
    assert summary["val"]["nll_scaled"] <= summary["val"]["nll"]
    # A different test split must not move the temperature: it is fitted on validation alone.
    shuffled = calibration_summary(
        {"val": probs[val], "test": probs[test][::-1]}, {"val": labels[val], "test": labels[test]}
    )
    assert shuffled["temperature"] == summary["temperature"]
    assert calibration_summary({"test": probs[test]}, {"test": labels[test]}) == {}
