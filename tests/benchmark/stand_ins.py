"""Stand-ins shared by the runner tests: a tiny colour dataset and a tiny "pretrained" backbone."""
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
            pixels = rng.integers(0, 80, (SIZE, SIZE, 3)) + np.array([170 if c == 2 - k else 20 for c in range(3)])
            Image.fromarray(pixels.clip(0, 255).astype("uint8")).save(root / name / f"{i}.png")
    return split_dataset(scan_dataset(root), ratios=(0.5, 0.25, 0.25), seed=0)


def stand_in_pretrained(seed: int = 0) -> BuiltModel:
    """A tiny conv backbone in the Keras-applications layout, treated as pretrained (frozen, inference mode)."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    backbone = keras.Model(inputs, x, name="stand_in")
    model = attach_head(backbone, 3, HeadConfig(units=(8,), dropout=0.0), name="stand_in_classifier")
    return BuiltModel(model=model, backbone=backbone, entry=None, weights="stand-in pretrained weights")
