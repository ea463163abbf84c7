"""The two-phase recipe proven, not just run: what each phase may and may not change."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from benchmark.training.freezing import freeze, unfreeze_top
from benchmark.training.recipe import RecipeSettings, train_two_phase
from models import BuildSpec, BuiltModel, HeadConfig, attach_head, build_model

SIZE = 16


def colour_images(n_per_class: int, seed: int = 0):
    """Three classes a tiny net separates easily: red, green and blue squares with noise."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label in range(3):
        block = rng.uniform(0, 80, (n_per_class, SIZE, SIZE, 3))
        block[..., label] += 170
        images.append(block)
        labels += [label] * n_per_class
    return np.concatenate(images).astype("float32"), np.array(labels)


def dataset(images, labels, weights=None, batch=16, shuffle=True):
    onehot = keras.utils.to_categorical(labels, 3)
    parts = (
        (images, onehot) if weights is None else (images, onehot, weights[labels].astype("float32"))
    )
    data = tf.data.Dataset.from_tensor_slices(parts)
    if (
        shuffle
    ):  # the images come sorted by class; unshuffled epochs would teach only the last class
        data = data.shuffle(len(labels), seed=0)
    return data.batch(batch)


def tiny_backbone() -> keras.Model:
    """Conv-BN blocks standing in for a pretrained backbone (same layout as keras.applications)."""
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    for i in range(3):
        x = keras.layers.Conv2D(8, 3, padding="same", name=f"conv{i}")(x)
        x = keras.layers.BatchNormalization(name=f"bn{i}")(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
    return keras.Model(inputs, x, name="tiny_backbone")


def tiny_built(seed=0) -> BuiltModel:
    keras.utils.set_random_seed(seed)
    backbone = tiny_backbone()
    model = attach_head(backbone, 3, HeadConfig(units=(8,), dropout=0.0), name="tiny")
    return BuiltModel(
        model=model, backbone=backbone, entry=None, weights="stand-in for pretrained weights"
    )


def snapshot(layer):
    return [keras.ops.convert_to_numpy(w) for w in layer.weights]


def changed(before, after):
    return any(not np.allclose(b, a) for b, a in zip(before, after))


@pytest.fixture(scope="module")
def data():
    images, labels = colour_images(24)
    return dataset(images, labels), dataset(*colour_images(8, seed=1))


def test_phase_one_changes_only_the_head(data):
    train, val = data
    built = tiny_built()
    backbone_before = [snapshot(layer) for layer in built.backbone.layers]
    head = [
        layer for layer in built.model.layers if layer.name.startswith("head_") and layer.weights
    ]
    head_before = [snapshot(layer) for layer in head]
    settings = RecipeSettings(initial_epochs=2, fine_tune_epochs=0, patience=5)
    result = train_two_phase(built, train, val, settings, steps_per_epoch=5, verbose=0)
    assert len(result.phases) == 1 and "skipped" in result.phase2_note
    for layer, before in zip(built.backbone.layers, backbone_before):
        assert not changed(before, snapshot(layer)), f"phase 1 changed backbone layer {layer.name}"
    assert all(changed(b, snapshot(layer)) for layer, b in zip(head, head_before))


def test_phase_two_changes_top_layers_but_never_frozen_ones_or_batchnorm_statistics(data):
    train, val = data
    built = tiny_built()
    settings = RecipeSettings(
        initial_epochs=1, fine_tune_epochs=2, fine_tune_layers=4, fine_tune_lr=1e-2, patience=5
    )
    before = {layer.name: snapshot(layer) for layer in built.backbone.layers}
    result = train_two_phase(built, train, val, settings, steps_per_epoch=5, verbose=0)
    assert [p.name for p in result.phases] == ["head", "fine_tune"]
    after = {layer.name: snapshot(layer) for layer in built.backbone.layers}
    # The top 4 layers are bn1(frozen, BN), relu1, conv2, bn2(frozen, BN) ... counted from the end:
    # layers = [input, rescaling, conv0, bn0, relu0, conv1, bn1, relu1, conv2, bn2, relu2]; top 4
    # = relu1..relu2.
    assert changed(before["conv2"], after["conv2"]), "the unfrozen top conv did not train"
    for name in ("conv0", "conv1", "bn0", "bn1", "bn2"):
        assert not changed(before[name], after[name]), f"{name} changed in phase 2"
    assert result.phases[1].unfrozen_layers == 1  # only conv2 holds trainable weights
    assert result.phase_boundary == result.phases[0].epochs
    assert len(result.history["loss"]) == sum(p.epochs for p in result.phases)


def test_unfreeze_top_keeps_batchnorm_frozen_even_with_all():
    built = tiny_built()
    freeze(built.backbone)
    assert not built.backbone.trainable_weights
    unfreeze_top(built.backbone, "all")
    trainable = {w.path.split("/")[-2] for w in built.backbone.trainable_weights}
    assert trainable == {"conv0", "conv1", "conv2"}


def test_recompiling_after_unfreezing_takes_effect(data):
    """A model compiled while frozen and not recompiled would not train the unfrozen layers."""
    train, val = data
    built = tiny_built()
    settings = RecipeSettings(
        initial_epochs=1, fine_tune_epochs=1, fine_tune_layers="all", fine_tune_lr=1e-2
    )
    before = snapshot(built.backbone.get_layer("conv0"))
    train_two_phase(built, train, val, settings, steps_per_epoch=5, verbose=0)
    assert changed(before, snapshot(built.backbone.get_layer("conv0")))


def test_tiny_model_learns_well_above_chance():
    images, labels = colour_images(30)
    val_images, val_labels = colour_images(10, seed=2)
    built = tiny_built(seed=1)
    settings = RecipeSettings(
        initial_epochs=20,
        fine_tune_epochs=3,
        fine_tune_layers=4,
        initial_lr=3e-2,
        fine_tune_lr=1e-3,
        patience=20,
    )
    train_two_phase(
        built,
        dataset(images, labels),
        dataset(val_images, val_labels),
        settings,
        steps_per_epoch=6,
        verbose=0,
    )
    accuracy = np.mean(built.model.predict(val_images, verbose=0).argmax(1) == val_labels)
    assert accuracy >= 0.9  # chance is 1/3


def test_scratch_model_trains_in_one_phase_with_both_budgets(data):
    train, val = data
    keras.utils.set_random_seed(0)
    built = build_model(
        "simple_cnn", BuildSpec(num_classes=3, image_size=SIZE, simple_cnn=get_simple_cnn_tiny())
    )
    result = train_two_phase(
        built,
        train,
        val,
        RecipeSettings(initial_epochs=1, fine_tune_epochs=1, patience=5),
        steps_per_epoch=5,
        verbose=0,
    )
    assert [p.name for p in result.phases] == ["single"] and result.phases[0].epochs == 2
    assert "no pretrained weights" in result.phase2_note


def test_random_init_registry_backbone_trains_whole_with_live_batchnorm(data):
    """Under `--weights none` there is nothing pretrained to protect: every layer trains, BN
    statistics included."""
    train, val = data
    keras.utils.set_random_seed(0)
    built = build_model(
        "mobilenet_v3_small", BuildSpec(num_classes=3, image_size=32, weights="none")
    )
    assert built.from_scratch
    images = train.map(lambda x, y: (tf.image.resize(x, (32, 32)), y))
    val_images = val.map(lambda x, y: (tf.image.resize(x, (32, 32)), y))
    norms = [
        layer
        for layer in built.backbone.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    first_conv = next(
        layer for layer in built.backbone.layers if isinstance(layer, keras.layers.Conv2D)
    )
    before_stats, before_conv = snapshot(norms[0]), snapshot(first_conv)
    result = train_two_phase(
        built,
        images,
        val_images,
        RecipeSettings(initial_epochs=1, fine_tune_epochs=0, patience=5),
        steps_per_epoch=5,
        verbose=0,
    )
    assert [p.name for p in result.phases] == ["single"]
    assert changed(before_conv, snapshot(first_conv)), (
        "the bottom conv of a random backbone must train"
    )
    assert changed(before_stats, snapshot(norms[0])), (
        "BN moving statistics must follow the data when nothing is pretrained"
    )
    assert norms[0].momentum == pytest.approx(0.9)


def get_simple_cnn_tiny():
    from models import SimpleCNNConfig

    return SimpleCNNConfig(base_filters=8, blocks=2, dense_units=16)


def test_alpha_changes_the_weighted_loss_on_an_imbalanced_batch():
    from data_pipeline import damped_class_weights

    images, labels = colour_images(4)
    labels = np.array([0] * 10 + [1] + [2])  # imbalanced labels for the same 12 images
    counts = np.bincount(labels, minlength=3)
    built = tiny_built()
    built.model.compile(loss="categorical_crossentropy")
    losses = {}
    for alpha in (0.0, 1.0):
        weights = damped_class_weights(counts, alpha)
        losses[alpha] = built.model.evaluate(
            dataset(images, labels, weights, batch=12, shuffle=False), verbose=0
        )
    assert not np.isclose(losses[0.0], losses[1.0])
