"""Corruption robustness after test-time BatchNorm adaptation (`cross_dataset/robustness_bn.py`):
each image set is scored by the model adapted to that set alone; the model is handed back as it
came."""

import keras
import numpy as np
import pytest
from stand_ins import SIZE, colour_split

from benchmark.cross_dataset.adapt_bn import (
    adapt_batch_norm,
    batch_norm_layers,
    reference_statistics,
    shift_batch_norm,
    statistics,
)
from benchmark.cross_dataset.robustness_bn import (
    ADAPT_BATCH,
    reference_images,
    score_models_adapted,
)
from benchmark.run.robustness import (
    CLEAN,
    ScoredModel,
    image_sets,
    predicted_labels,
    score_models,
    scored_sets,
)


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    return colour_split(tmp_path_factory.mktemp("colours"))  # 3 test images per class


def frozen_bn_model() -> keras.Model:
    """conv -> BatchNorm in inference mode with statistics far from any image's -> head: what it
    predicts depends on the statistics, so adapting them shows."""
    keras.utils.set_random_seed(1)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="head")(x))
    bn = model.get_layer("bn")
    bn.moving_mean.assign(np.full(6, 40.0, "float32"))
    bn.moving_variance.assign(np.full(6, 900.0, "float32"))
    bn.trainable = False
    return model


def scored(model) -> ScoredModel:
    return ScoredModel("m__alpha0__seed0", "m", 0.0, 0, model, "raw", ["a", "b", "c"])


def test_each_set_is_scored_by_the_model_adapted_to_it_alone(split):
    model = frozen_bn_model()
    before = statistics(model)
    rows = score_models_adapted([scored(model)], split, SIZE)["m__alpha0__seed0"]
    # Handed back as it came: the statistics of the model before scoring.
    for (mean, var), (mean0, var0) in zip(statistics(model), before):
        np.testing.assert_array_equal(mean, mean0)
        np.testing.assert_array_equal(var, var0)
    plain = score_models([scored(model)], split, SIZE)["m__alpha0__seed0"]
    assert [(r.corruption, r.severity, r.n) for r in rows] == [
        (r.corruption, r.severity, r.n) for r in plain
    ]
    # The same figures by hand, each set adapted in a fresh copy of the model, in reverse order:
    # shifted by how the set's statistics differ from the training images'.
    sets, truth = scored_sets(split, SIZE, 8)
    source = reference_images(split, SIZE)
    assert len(source) == len(split.subset("train"))  # fewer than 32 a class: all of them
    # The clean set is adapted to as a whole, a corruption one severity at a time.
    groups = [(CLEAN, np.ones(len(truth), bool))] + [
        (name, sets.severity_column(name) == level)
        for name in reversed(image_sets()[1:])
        for level in range(1, 6)
    ]
    expected = {}
    for name, at in groups:
        if not at.any():
            continue
        fresh = frozen_bn_model()
        reference = reference_statistics(fresh, [source.astype("float32")])
        images = sets.images(name)[at].astype("float32")
        batches = [images[i : i + ADAPT_BATCH] for i in range(0, len(images), ADAPT_BATCH)]
        assert shift_batch_norm(fresh, batches, reference) == 1
        level = 0 if name == CLEAN else int(sets.severity_column(name)[at][0])
        hand = np.mean(predicted_labels(scored(fresh), images) == truth[at])
        expected[(name, level)] = hand
    assert len(rows) == len(expected)
    for row in rows:
        assert row.accuracy == pytest.approx(expected[(row.corruption, row.severity)]), row


def test_adaptation_changes_what_a_frozen_bn_model_predicts(split):
    model = frozen_bn_model()
    sets, _ = scored_sets(split, SIZE, 8)
    images = sets.images(CLEAN)
    plain = model.predict(images.astype("float32"), verbose=0)
    adapt_batch_norm(model, [images.astype("float32")])
    adapted = model.predict(images.astype("float32"), verbose=0)
    assert not np.allclose(plain, adapted, atol=1e-3)  # the test above would otherwise be empty
    assert len(batch_norm_layers(model)) == 1


def test_shifting_moves_the_statistics_by_the_targets_difference_from_the_reference():
    model = frozen_bn_model()
    rng = np.random.default_rng(0)
    source = rng.uniform(0, 255, (16, SIZE, SIZE, 3)).astype("float32")
    ((mean0, var0),) = statistics(model)
    reference = reference_statistics(model, [source])
    np.testing.assert_array_equal(statistics(model)[0][0], mean0)  # handed back unchanged
    # The source itself: no difference, so nothing moves (a reset would move to its statistics).
    assert shift_batch_norm(model, [source], reference) == 1
    np.testing.assert_allclose(statistics(model)[0][0], mean0, atol=1e-3)
    np.testing.assert_allclose(statistics(model)[0][1], var0, rtol=1e-4)
    # A brighter, flatter target: the mean moves by the difference, the variance by the ratio.
    target = 0.5 * source + 100
    shift_batch_norm(model, [target], reference)
    conv = model.get_layer("conv")
    out_s, out_t = np.array(conv(source)), np.array(conv(target))
    expected_mean = mean0 + out_t.mean(axis=(0, 1, 2)) - out_s.mean(axis=(0, 1, 2))
    expected_var = var0 * out_t.var(axis=(0, 1, 2)) / out_s.var(axis=(0, 1, 2))
    np.testing.assert_allclose(statistics(model)[0][0], expected_mean, rtol=1e-3, atol=1e-2)
    np.testing.assert_allclose(statistics(model)[0][1], expected_var, rtol=1e-3)
