"""Phase 1 on cached backbone features, shared by every alpha cell of a model.

While the backbone is frozen and in inference mode, its pooled output for an un-augmented image
never changes, so recomputing it every epoch of every alpha is wasted work. We compute the pooled
features of the train and val splits once per (model, image size, weights, split), store them in
the run folder, and train the head on them. The head model is built from the very same layer
objects as the full model's head, so its trained weights are already in place for phase 2.
With augmentation on, phase 1 must see augmented images and runs online instead.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from benchmark.errors import error_line
from benchmark.io import replace_atomically
from benchmark.output import warn
from models import BuiltModel
from models.head import HEAD_PREFIX

POOL_LAYER = f"{HEAD_PREFIX}pool"


def supports_cached_features(built: BuiltModel) -> bool:
    """Image models with a frozen backbone followed by our pooled head (not scratch, text or
    fusion)."""
    names = [layer.name for layer in built.model.layers]
    return not built.from_scratch and built.backbone is not None and POOL_LAYER in names


def feature_extractor(built: BuiltModel) -> keras.Model:
    """Image -> pooled backbone features (the input of the dense head)."""
    return keras.Model(built.model.inputs, built.model.get_layer(POOL_LAYER).output)


def head_model(built: BuiltModel) -> keras.Model:
    """Pooled features -> softmax, sharing the head layers (and so the weights) of the full
    model."""
    layers = built.model.layers
    start = [layer.name for layer in layers].index(POOL_LAYER) + 1
    features = keras.Input(
        shape=built.model.get_layer(POOL_LAYER).output.shape[1:], name="pooled_features"
    )
    x = features
    for layer in layers[start:]:
        x = layer(x)
    return keras.Model(features, x, name=f"{built.model.name}_head")


def features_key(
    model_name: str, image_size: int, weights: str, split_file: Path, part: str
) -> str:
    """Cache file stem: what determines the features (the split file's content stands for the
    images)."""
    digest = hashlib.sha1(split_file.read_bytes()).hexdigest()[:12]
    weights_tag = hashlib.sha1(weights.encode()).hexdigest()[:8]
    return f"{model_name}_{image_size}px_{weights_tag}_{digest}_{part}"


def cached_features(
    built: BuiltModel, dataset, cache_file: Path, rows: int | None = None
) -> np.ndarray:
    """Pooled features of an unshuffled, un-augmented dataset, computed once and kept as `.npy`.

    A stored file that does not load or lacks rows (`rows`: the dataset's images) is damaged (a
    full disk, a copy cut short): it is named in one warning line and computed again.
    """
    if cache_file.is_file():
        try:
            stored = np.load(cache_file)
            if stored.ndim != 2 or (rows is not None and len(stored) != rows):
                raise ValueError(f"it holds shape {stored.shape}, expected {rows} rows")
            return stored
        except (EOFError, OSError, ValueError) as err:
            warn(
                f"stored features {cache_file} are damaged ({error_line(err)}); "
                "computing them again"
            )
    features = feature_extractor(built).predict(dataset.map(lambda *element: element[0]), verbose=0)
    replace_atomically(cache_file, lambda path: np.save(path, features), suffix=".npy")
    return features


def feature_dataset(
    features: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    batch_size: int,
    sample_weights: np.ndarray | None = None,
    shuffle_seed: int | None = None,
) -> tf.data.Dataset:
    """(features, one-hot[, per-sample weight]) batches, shuffled with the cell's seed for
    training."""
    onehot = keras.utils.to_categorical(labels, num_classes).astype("float32")
    parts = (
        (features, onehot)
        if sample_weights is None
        else (features, onehot, sample_weights[labels].astype("float32"))
    )
    data = tf.data.Dataset.from_tensor_slices(parts)
    if shuffle_seed is not None:
        data = data.shuffle(len(labels), seed=shuffle_seed, reshuffle_each_iteration=True)
    return data.batch(batch_size).prefetch(tf.data.AUTOTUNE)
