"""`make_dataset`: a split's table as a batched tf.data pipeline for Keras `fit`/`predict`.

Order of work, and why:
decode + resize (parallel) -> cache (so each epoch, and each cell, re-reads no file) -> shuffle (per
epoch, seeded) -> batch -> augment (training only, on 0..255; MixUp/CutMix last, as they mix the
labels and weights too) or a test-time view (evaluation only, on 0..255) -> `preprocess` exactly
once -> prefetch.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf

from data_pipeline.augment import AugmentConfig, build_augmenter, build_label_mixer
from data_pipeline.decode import decode_file, image_hw, resize_image
from data_pipeline.errors import DataError
from data_pipeline.text_inputs import make_tokenize
from data_pipeline.tta import tta_view

INPUTS = ("image", "text", "image+text")


def _decoded(
    frame: pd.DataFrame,
    class_names: list[str],
    image_size,
    inputs: str,
    tokenizer,
    sequence_length: int,
):
    """Elements `{"label", "image"?, "token_ids"?, "padding_mask"?}` in file order: what a cache
    holds."""
    size = image_hw(image_size)
    captions = (
        frame["caption"].fillna("").astype(str)
        if "caption" in frame.columns
        else pd.Series([""] * len(frame))
    )
    columns = {
        "path": np.asarray(frame["path"], dtype=str),
        "label": _label_indices(frame, class_names),
        "caption": np.asarray(captions, dtype=str),
    }
    use_image, use_text = inputs != "text", inputs != "image"
    tokenize = make_tokenize(tokenizer, sequence_length) if use_text else None

    def load(row: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        element = {"label": row["label"]}
        if use_image:
            element["image"] = resize_image(decode_file(row["path"]), size)
        if use_text:
            element.update(tokenize(row["caption"]))
        return element

    return tf.data.Dataset.from_tensor_slices(columns).map(
        load, num_parallel_calls=tf.data.AUTOTUNE
    )


def fill_shared_cache(
    frame: pd.DataFrame,
    class_names: list[str],
    prefix: str | Path,
    *,
    image_size,
    inputs: str = "image",
    tokenizer: Callable | None = None,
    sequence_length: int = 32,
) -> Path:
    """Decodes `frame` once into the tf.data cache file `prefix` that every later
    `make_dataset(cache=prefix)` reads.

    Many cells (every alpha, seed and model at one image size) read one split's decoded images, so
    they are decoded once per run rather than once per cell. The cache is written under a name of
    this process's own and renamed into place, data first and the index last (the index is what
    makes tf.data read rather than write): a killed writer or a second process filling the same
    cache at once never leaves or reads a half-written one.
    """
    prefix = Path(prefix)
    if Path(f"{prefix}.index").is_file():
        return prefix
    prefix.parent.mkdir(parents=True, exist_ok=True)
    temporary = prefix.with_name(f".{prefix.name}.{os.getpid()}.tmp")
    for leftover in prefix.parent.glob(f"{temporary.name}*"):
        leftover.unlink()
    for _ in _decoded(frame, class_names, image_size, inputs, tokenizer, sequence_length).cache(
        str(temporary)
    ):
        pass
    written = sorted(
        prefix.parent.glob(f"{temporary.name}*"), key=lambda path: path.name.endswith(".index")
    )
    for path in written:  # the index goes last: it is the commit point
        os.replace(path, prefix.parent / path.name.replace(temporary.name, prefix.name, 1))
    return prefix


def epoch_seed(seed: int, epoch: int) -> int:
    """The shuffle and augmentation seed of one stand-alone epoch (`make_dataset(..., epoch=e)`)."""
    return (int(seed) * 1_000_003 + int(epoch) * 7_919 + 17) % (2**31 - 1)


def _at_side(images: tf.Tensor, side: tf.Variable) -> tf.Tensor:
    """`images` resized to `side` x `side` (read now), or untouched when they already are."""
    target = tf.convert_to_tensor(side, dtype=tf.int32)
    shape = tf.shape(images)
    return tf.cond(
        tf.logical_and(tf.equal(shape[1], target), tf.equal(shape[2], target)),
        lambda: tf.cast(images, tf.float32),
        lambda: resize_image(images, tf.stack([target, target])),
    )


def _mixed(batch: dict, mixer, num_classes: int, weights: tf.Tensor | None) -> dict:
    """`batch` with its images mixed and the mixed one-hot labels (and class weights) beside
    them."""
    onehot = tf.one_hot(batch["label"], num_classes, dtype=tf.float32)
    per_image = None if weights is None else tf.gather(weights, batch["label"])
    images, soft, mixed_weights = mixer(batch["image"], onehot, per_image)
    out = {**batch, "image": images, "soft_label": soft}
    return out if mixed_weights is None else {**out, "weight": mixed_weights}


def _label_indices(frame: pd.DataFrame, class_names: list[str]) -> np.ndarray:
    index = {name: i for i, name in enumerate(class_names)}
    unknown = sorted(set(frame["label"]) - set(index))
    if unknown:
        raise DataError(
            f"labels {unknown} are not among the classes {class_names}; make a new split"
        )
    return np.array([index[label] for label in frame["label"]], dtype=np.int32)


def _check_arguments(
    inputs: str, tokenizer: object, sample_weights: np.ndarray | None, num_classes: int
) -> None:
    if inputs not in INPUTS:
        raise ValueError(f"unknown inputs {inputs!r}; expected one of {INPUTS}")
    if inputs != "image" and tokenizer is None:
        raise ValueError(f"inputs={inputs!r} needs a tokenizer")
    if sample_weights is not None and np.shape(sample_weights) != (num_classes,):
        raise ValueError(
            f"sample_weights must hold one weight per class ({num_classes}), got shape "
            f"{np.shape(sample_weights)}"
        )


def make_dataset(
    frame: pd.DataFrame,
    class_names: list[str],
    *,
    image_size: int | tuple[int, int],
    batch_size: int,
    preprocess: Callable | None = None,
    augment: AugmentConfig | None = None,
    sample_weights: np.ndarray | None = None,
    shuffle_seed: int | None = None,
    cache: str | Path | None = None,
    inputs: str = "image",
    tokenizer: Callable | None = None,
    sequence_length: int = 32,
    view: int = 0,
    epoch: int | None = None,
    side: tf.Variable | None = None,
) -> tf.data.Dataset:
    """Batches of `(x, y_onehot)`, or `(x, y_onehot, w)` when per-class `sample_weights` are given.

    Args:
        frame: rows with `path`, `label` (and `caption` for text inputs), e.g.
            `SplitTable.subset("train")`.
        class_names: the label order of the one-hot targets.
        image_size: square side or `(height, width)`.
        batch_size: images per batch; the last batch may be smaller.
        preprocess: the model family's preprocessing, applied once to float32 0..255 batches; None
            keeps 0..255.
        augment: training augmentation, seeded with `shuffle_seed` (or 0); None for none.
        sample_weights: one weight per class; each element gets the weight of its label.
        shuffle_seed: reshuffles every epoch with this seed; None keeps file order (val/test:
            predictions are matched to paths by order).
        cache: None, "memory", or a file path for `Dataset.cache` (see `fill_shared_cache`); holds
            decoded, resized, un-augmented images (and token ids).
        inputs: "image" (x is the image batch), "text" (`{"token_ids", "padding_mask"}`) or
            "image+text" (both, plus "image").
        tokenizer: a keras-hub style tokenizer for text inputs (strings -> token ids).
        sequence_length: token ids per caption after padding/truncation.
        view: the test-time view of every image (`tta.VIEWS`; 0 = the image itself), made on 0..255
            before `preprocess`.
        epoch: None for the training loop's dataset (reshuffled and re-augmented every time it is
            iterated, so epoch e's draws follow from the e-1 before it). An int gives that one epoch
            alone, with its order and augmentation a pure function of (`shuffle_seed`, `epoch`): any
            process can rebuild epoch e without replaying the epochs before it (the feature bank
            does).
        side: progressive resizing: an int32 scalar variable; every training batch is resized to
            that square side (after augmentation, before `preprocess`) when the batch is made, so
            whoever sets it between epochs (a training callback) chooses the next epoch's side.
    """
    _check_arguments(inputs, tokenizer, sample_weights, len(class_names))
    use_image = inputs != "text"
    ds = _decoded(frame, class_names, image_size, inputs, tokenizer, sequence_length)
    if cache is not None:
        ds = ds.cache() if cache == "memory" else ds.cache(str(cache))
    draw_seed = shuffle_seed if epoch is None else epoch_seed(shuffle_seed or 0, epoch)
    if shuffle_seed is not None:
        ds = ds.shuffle(max(len(frame), 1), seed=draw_seed, reshuffle_each_iteration=epoch is None)
    ds = ds.batch(batch_size)
    if augment is not None and use_image:
        augmenter = build_augmenter(augment, draw_seed or 0)
        # One call at a time: the augmenter's random state advances per batch, and parallel calls
        # would take those states in a varying order, losing reproducibility.
        ds = ds.map(
            lambda batch: {**batch, "image": augmenter(batch["image"], training=True)},
            num_parallel_calls=None,
        )
    if (
        side is not None and use_image
    ):  # after augmenting: the warp works on the full-size image, then one antialiased resize
        ds = ds.map(
            lambda batch: {**batch, "image": _at_side(batch["image"], side)},
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    weights = (
        None
        if sample_weights is None
        else tf.constant(np.asarray(sample_weights, dtype=np.float32))
    )
    mixer = build_label_mixer(augment, draw_seed or 0) if augment and use_image else None
    if mixer is not None:  # one call at a time, as for the augmenter
        ds = ds.map(lambda batch: _mixed(batch, mixer, len(class_names), weights))

    def finish(batch: dict[str, tf.Tensor]) -> tuple:
        features = {
            key: batch[key] for key in ("image", "token_ids", "padding_mask") if key in batch
        }
        if use_image and view:
            features["image"] = tta_view(features["image"], view)
        if use_image and preprocess is not None:
            features["image"] = preprocess(features["image"])
        x = features["image"] if inputs == "image" else features
        if "soft_label" in batch:  # mixed: labels and weights come mixed with the images
            y = batch["soft_label"]
            return (x, y) if weights is None else (x, y, batch["weight"])
        y = tf.one_hot(batch["label"], len(class_names), dtype=tf.float32)
        return (x, y) if weights is None else (x, y, tf.gather(weights, batch["label"]))

    return ds.map(finish, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
