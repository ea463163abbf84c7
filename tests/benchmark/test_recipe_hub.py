"""Phase 2 of a keras-hub image encoder unfreezes exactly its top N transformer blocks."""

import keras
import numpy as np
import tensorflow as tf

from benchmark.training.freezing import unfreeze_top_blocks
from benchmark.training.recipe import RecipeSettings, train_two_phase
from models import BuildSpec, BuiltModel, HeadConfig
from models.hub import hub_image_model, transformer_blocks
from tests.models.test_hub import SIZE, tiny_converter, tiny_encoder


def tiny_built() -> BuiltModel:
    encoder = tiny_encoder("vit")
    model = hub_image_model(
        encoder,
        tiny_converter("vit"),
        SIZE,
        BuildSpec(num_classes=3, head=HeadConfig(units=(8,), dropout=0.0)),
        name="tiny_vit",
    )
    return BuiltModel(
        model=model,
        backbone=encoder,
        entry=None,
        weights="stand-in for the preset's weights",
        blocks=transformer_blocks(encoder),
    )


def snapshot(layer):
    return [keras.ops.convert_to_numpy(w).copy() for w in layer.weights]


def changed(before, after):
    return any(not np.allclose(b, a) for b, a in zip(before, after))


def data(seed):
    rng = np.random.default_rng(seed)
    labels = np.arange(24) % 3
    images = rng.uniform(0, 80, (24, SIZE, SIZE, 3)).astype("float32")
    images[np.arange(24), :, :, labels] += 170
    return tf.data.Dataset.from_tensor_slices(
        (images, keras.utils.to_categorical(labels, 3))
    ).batch(8)


def test_unfreeze_top_blocks_makes_exactly_those_trainable():
    built = tiny_built()
    built.backbone.trainable = False
    assert unfreeze_top_blocks(built.backbone, built.blocks, 2) == 2
    trainable = {id(v) for v in built.backbone.trainable_weights}
    expected = {id(v) for block in built.blocks[1:] for v in block.weights}
    assert trainable == expected
    assert {id(v) for v in built.model.trainable_weights} >= expected


def test_phase_two_trains_the_top_two_blocks_only():
    built = tiny_built()
    blocks = built.blocks
    embedding = built.backbone.get_layer("vit_patching_and_embedding")
    final_norm = built.backbone.get_layer("vit_encoder").layer_norm
    before = {
        "embedding": snapshot(embedding),
        "norm": snapshot(final_norm),
        **{i: snapshot(b) for i, b in enumerate(blocks)},
    }
    settings = RecipeSettings(
        initial_epochs=1, fine_tune_epochs=2, fine_tune_layers=2, fine_tune_lr=1e-2, patience=5
    )
    result = train_two_phase(built, data(0), data(1), settings, steps_per_epoch=3, verbose=0)
    assert [p.name for p in result.phases] == ["head", "fine_tune"] and result.phases[
        1
    ].unfrozen_layers == 2
    assert changed(before[1], snapshot(blocks[1])) and changed(before[2], snapshot(blocks[2]))
    assert not changed(before[0], snapshot(blocks[0])), "block 0 is below the top two"
    assert not changed(before["embedding"], snapshot(embedding)) and not changed(
        before["norm"], snapshot(final_norm)
    )
