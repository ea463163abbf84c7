"""Balanced and damped class weights, checked against hand-computed numbers."""

import numpy as np
import pytest

from data_pipeline import DataError, balanced_class_weights, damped_class_weights, validate_alpha


def test_balanced_weights_for_a_known_count_vector():
    # N = 100, K = 3: w = 100 / (3 n)
    np.testing.assert_allclose(
        balanced_class_weights([10, 30, 60]), [3.3333, 1.1111, 0.5556], atol=1e-4
    )


def test_damped_weights_interpolate_between_unweighted_and_balanced():
    np.testing.assert_allclose(
        damped_class_weights([10, 30, 60], 0.5), [2.1667, 1.0556, 0.7778], atol=1e-4
    )
    np.testing.assert_allclose(damped_class_weights(np.array([10, 30, 60]), 0.0), [1, 1, 1])
    np.testing.assert_allclose(
        damped_class_weights([10, 30, 60], 1.0), balanced_class_weights([10, 30, 60])
    )


@pytest.mark.parametrize("alpha", [-0.1, float("nan"), float("inf"), "abc"])
def test_bad_alpha_names_the_flag(alpha):
    with pytest.raises(DataError, match="--alphas"):
        validate_alpha(alpha)


def test_alpha_above_one_is_allowed_with_a_warning(caplog, monkeypatch):
    monkeypatch.setattr("data_pipeline.class_weights._WARNED_ALPHAS", set())  # once per process
    np.testing.assert_allclose(
        damped_class_weights([10, 30, 60], 2.0), [5.6667, 1.2222, 0.1111], atol=1e-4
    )
    assert "alpha 2 > 1" in caplog.text


def test_a_class_without_training_images_is_an_error():
    with pytest.raises(DataError, match="every class needs training images"):
        balanced_class_weights([10, 0, 5])
