"""Test-time BatchNorm adaptation on a tiny saved model: the statistics move to the target's,
nothing else moves, and the file on disk stays as it was."""

import hashlib

import keras
import numpy as np

from benchmark.cross_dataset.adapt_bn import adapt_batch_norm, batch_norm_layers, statistics


def tiny_model() -> keras.Model:
    """conv -> BatchNorm (frozen, as a saved fine-tuned model has it) -> dropout -> nested BN."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Dropout(0.5, name="drop")(x)  # must stay off during the statistics pass
    inner = keras.Sequential([keras.Input((8, 8, 4)), keras.layers.BatchNormalization(name="bn2")])
    x = inner(x, training=False)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3, name="dense")(x))
    for layer in batch_norm_layers(model):
        layer.trainable = False
    return model


def test_adapting_moves_the_statistics_to_the_shifted_target_and_nothing_else(tmp_path):
    path = tmp_path / "model.keras"
    tiny_model().save(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    model = keras.saving.load_model(path)
    rng = np.random.default_rng(0)
    source = rng.normal(0.0, 1.0, (24, 8, 8, 3)).astype("float32")
    target = source + 3.0  # the same scenes, brighter
    before = statistics(model)
    others = {w.path: np.array(w) for w in model.weights if "moving_" not in w.path}
    adapted = adapt_batch_norm(model, [target[:10], target[10:20], target[20:]])

    assert adapted == 2
    conv_out = np.array(model.get_layer("conv")(target))
    mean, variance = statistics(model)[0]
    np.testing.assert_allclose(mean, conv_out.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-4)
    assert not np.allclose(mean, before[0][0], atol=0.1)  # moved from the initial statistics
    # Variance: the sample-weighted mean of the batch variances (within-batch spread).
    batches = [conv_out[:10], conv_out[10:20], conv_out[20:]]
    expected = sum(len(b) * b.var(axis=(0, 1, 2)) for b in batches) / len(conv_out)
    np.testing.assert_allclose(variance, expected, rtol=1e-3, atol=1e-4)
    assert not np.allclose(statistics(model)[1][0], before[1][0])  # the nested layer moved too
    for weight in model.weights:
        if "moving_" not in weight.path:  # conv, dense, gamma and beta are untouched
            np.testing.assert_array_equal(np.array(weight), others[weight.path])
    assert [(bn.trainable, bn.momentum) for bn in batch_norm_layers(model)] == [(False, 0.99)] * 2
    assert all("call" not in vars(bn) for bn in batch_norm_layers(model))  # inference mode again
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


def test_a_model_without_batch_norm_is_left_alone():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    weights = [np.array(w) for w in model.weights]
    assert adapt_batch_norm(model, [np.ones((3, 4), "float32")]) == 0
    for weight, kept in zip(model.weights, weights):
        np.testing.assert_array_equal(np.array(weight), kept)
