"""Stand-ins shared by the runner tests: a tiny colour dataset and tiny "pretrained" backbones."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
from PIL import Image

from data_pipeline import SplitTable, scan_dataset, split_dataset
from models import BuiltModel, HeadConfig, attach_head

SIZE = 16


def colour_split(root: Path) -> SplitTable:
    """Three colour classes, 12 images each, split 50/25/25."""
    rng = np.random.default_rng(0)
    for k, name in enumerate(("blue", "green", "red")):
        (root / name).mkdir()
        for i in range(12):
            pixels = rng.integers(0, 80, (SIZE, SIZE, 3)) + np.array(
                [170 if c == 2 - k else 20 for c in range(3)]
            )
            Image.fromarray(pixels.clip(0, 255).astype("uint8")).save(root / name / f"{i}.png")
    return split_dataset(scan_dataset(root), ratios=(0.5, 0.25, 0.25), seed=0)


def stand_in_pretrained(seed: int = 0) -> BuiltModel:
    """A tiny conv backbone in the Keras-applications layout, treated as pretrained (frozen,
    inference mode)."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    backbone = keras.Model(inputs, x, name="stand_in")
    model = attach_head(
        backbone, 3, HeadConfig(units=(8,), dropout=0.0), name="stand_in_classifier"
    )
    return BuiltModel(
        model=model, backbone=backbone, entry=None, weights="stand-in pretrained weights"
    )


def residual_stand_in(seed: int = 0, dropout_below: bool = False) -> BuiltModel:
    """A tiny "pretrained" backbone with a residual block, under the shared head (with dropout).

    layers: 0 input, 1 rescale, 2 conv_a, 3 bn_a, 4 conv_b, 5 bn_b, 6 add (bn_a + bn_b),
    7 conv_c, 8 bn_c
    """
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1 / 255, name="rescale")(inputs)
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv_a")(x)
    if dropout_below:
        x = keras.layers.Dropout(0.2, name="drop_a")(x)
    shortcut = x = keras.layers.BatchNormalization(name="bn_a")(x)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv_b")(x)
    x = keras.layers.BatchNormalization(name="bn_b")(x)
    x = keras.layers.Add(name="add")([x, shortcut])
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv_c")(x)
    x = keras.layers.BatchNormalization(name="bn_c")(x)
    backbone = keras.Model(inputs, x, name="residual_stand_in")
    for layer in backbone.layers:  # "pretrained" BatchNorm statistics, away from the identity
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(np.full(8, 0.1, np.float32))
            layer.moving_variance.assign(np.full(8, 2.0, np.float32))
    model = attach_head(
        backbone, 3, HeadConfig(units=(8,), dropout=0.2), name="residual_classifier"
    )
    return BuiltModel(
        model=model, backbone=backbone, entry=None, weights="stand-in pretrained weights"
    )
