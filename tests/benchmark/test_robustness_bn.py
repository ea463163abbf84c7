"""Corruption robustness after test-time BatchNorm adaptation (`cross_dataset/robustness_bn.py`):
each image set is scored by the model adapted to that set alone; the model is handed back as it
came."""

import keras
import numpy as np
import pytest
from stand_ins import SIZE, colour_split

from benchmark.cross_dataset.adapt_bn import adapt_batch_norm, batch_norm_layers, statistics
from benchmark.cross_dataset.robustness_bn import ADAPT_BATCH, score_models_adapted
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
    # The same figures by hand, each set adapted in a fresh copy of the model, in reverse order.
    sets, truth = scored_sets(split, SIZE, 8)
    expected = {}
    for name in reversed(image_sets()):
        fresh = frozen_bn_model()
        images = sets.images(name)
        batches = [images[i : i + ADAPT_BATCH].astype("float32") for i in range(0, 9, 32)]
        assert adapt_batch_norm(fresh, batches) == 1
        expected[name] = predicted_labels(scored(fresh), images)
    clean_row = next(r for r in rows if r.corruption == CLEAN)
    assert clean_row.accuracy == pytest.approx(np.mean(expected[CLEAN] == truth))
    for row in rows:
        if row.corruption == CLEAN:
            continue
        at = sets.severity_column(row.corruption) == row.severity
        hand = np.mean(expected[row.corruption][at] == truth[at])
        assert row.accuracy == pytest.approx(hand), (row.corruption, row.severity)


def test_adaptation_changes_what_a_frozen_bn_model_predicts(split):
    model = frozen_bn_model()
    sets, _ = scored_sets(split, SIZE, 8)
    images = sets.images(CLEAN)
    plain = model.predict(images.astype("float32"), verbose=0)
    adapt_batch_norm(model, [images.astype("float32")])
    adapted = model.predict(images.astype("float32"), verbose=0)
    assert not np.allclose(plain, adapted, atol=1e-3)  # the test above would otherwise be empty
    assert len(batch_norm_layers(model)) == 1
