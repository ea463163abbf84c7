"""`make_dataset`: a split's table as a batched tf.data pipeline for Keras `fit`/`predict`.

Order of work, and why:
decode + resize (parallel) -> cache (so each epoch re-reads no file) -> shuffle (per epoch, seeded)
-> batch -> augment (training only, on 0..255) or a test-time view (evaluation only, on 0..255)
-> `preprocess` exactly once -> prefetch.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf

from data_pipeline.augment import AugmentConfig, build_augmenter
from data_pipeline.decode import decode_file, image_hw, resize_image
from data_pipeline.errors import DataError
from data_pipeline.text_inputs import make_tokenize
from data_pipeline.tta import tta_view

INPUTS = ("image", "text", "image+text")
# Decoded images may take this share of physical memory in a memory cache; beyond it they spill to a file.
# A quarter, because the train, val and test caches live beside the model, its optimizer and TF's buffers.
MEMORY_CACHE_FRACTION = 0.25


def physical_memory_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def cache_location(num_images: int, image_size: int | tuple[int, int], spill_file: Path,
                   *, memory_budget: int | None = None) -> str | Path:
    """`"memory"` when `num_images` decoded float32 images fit the budget, else `spill_file` for `make_dataset`.

    The budget defaults to `MEMORY_CACHE_FRACTION` of physical memory: TrashNet at 224 px (1.1 GB
    for its training split) stays in memory on a laptop, a 12k-image dataset at 224 px (7 GB) spills.
    A spill file that was never finished (its writer was killed; tf.data then leaves a lock file
    and refuses to write again) is removed, so the next run simply rebuilds it.
    """
    height, width = image_hw(image_size)
    budget = MEMORY_CACHE_FRACTION * physical_memory_bytes() if memory_budget is None else memory_budget
    if num_images * height * width * 3 * 4 <= budget:
        return "memory"
    spill_file = Path(spill_file)
    if not Path(f"{spill_file}.index").is_file():
        for leftover in spill_file.parent.glob(f"{spill_file.name}*"):
            leftover.unlink()
    spill_file.parent.mkdir(parents=True, exist_ok=True)
    return spill_file


def _label_indices(frame: pd.DataFrame, class_names: list[str]) -> np.ndarray:
    index = {name: i for i, name in enumerate(class_names)}
    unknown = sorted(set(frame["label"]) - set(index))
    if unknown:
        raise DataError(f"labels {unknown} are not among the classes {class_names}; make a new split")
    return np.array([index[label] for label in frame["label"]], dtype=np.int32)


def _check_arguments(inputs: str, tokenizer: object, sample_weights: np.ndarray | None, num_classes: int) -> None:
    if inputs not in INPUTS:
        raise ValueError(f"unknown inputs {inputs!r}; expected one of {INPUTS}")
    if inputs != "image" and tokenizer is None:
        raise ValueError(f"inputs={inputs!r} needs a tokenizer")
    if sample_weights is not None and np.shape(sample_weights) != (num_classes,):
        raise ValueError(f"sample_weights must hold one weight per class ({num_classes}), got shape {np.shape(sample_weights)}")


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
) -> tf.data.Dataset:
    """Batches of `(x, y_onehot)`, or `(x, y_onehot, w)` when per-class `sample_weights` are given.

    Args:
        frame: rows with `path`, `label` (and `caption` for text inputs), e.g. `SplitTable.subset("train")`.
        class_names: the label order of the one-hot targets.
        image_size: square side or `(height, width)`.
        batch_size: images per batch; the last batch may be smaller.
        preprocess: the model family's preprocessing, applied once to float32 0..255 batches; None keeps 0..255.
        augment: training augmentation, seeded with `shuffle_seed` (or 0); None for none.
        sample_weights: one weight per class; each element gets the weight of its label.
        shuffle_seed: reshuffles every epoch with this seed; None keeps file order (val/test: predictions
            are matched to paths by order).
        cache: None, "memory", or a file path for `Dataset.cache` (see `cache_location`); holds decoded,
            resized, un-augmented images (and token ids).
        inputs: "image" (x is the image batch), "text" (`{"token_ids", "padding_mask"}`) or "image+text" (both, plus "image").
        tokenizer: a keras-hub style tokenizer for text inputs (strings -> token ids).
        sequence_length: token ids per caption after padding/truncation.
        view: the test-time view of every image (`tta.VIEWS`; 0 = the image itself), made on 0..255 before `preprocess`.
    """
    _check_arguments(inputs, tokenizer, sample_weights, len(class_names))
    size = image_hw(image_size)
    captions = frame["caption"].fillna("").astype(str) if "caption" in frame.columns else pd.Series([""] * len(frame))
    columns = {"path": np.asarray(frame["path"], dtype=str), "label": _label_indices(frame, class_names),
               "caption": np.asarray(captions, dtype=str)}
    use_image, use_text = inputs != "text", inputs != "image"
    tokenize = make_tokenize(tokenizer, sequence_length) if use_text else None

    def load(row: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        element = {"label": row["label"]}
        if use_image:
            element["image"] = resize_image(decode_file(row["path"]), size)
        if use_text:
            element.update(tokenize(row["caption"]))
        return element

    ds = tf.data.Dataset.from_tensor_slices(columns).map(load, num_parallel_calls=tf.data.AUTOTUNE)
    if cache is not None:
        ds = ds.cache() if cache == "memory" else ds.cache(str(cache))
    if shuffle_seed is not None:
        ds = ds.shuffle(max(len(frame), 1), seed=shuffle_seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if augment is not None and use_image:
        augmenter = build_augmenter(augment, shuffle_seed or 0)
        # One call at a time: the augmenter's random state advances per batch, and parallel calls
        # would take those states in a varying order, losing reproducibility.
        ds = ds.map(lambda batch: {**batch, "image": augmenter(batch["image"], training=True)}, num_parallel_calls=None)
    weights = None if sample_weights is None else tf.constant(np.asarray(sample_weights, dtype=np.float32))

    def finish(batch: dict[str, tf.Tensor]) -> tuple:
        features = {key: batch[key] for key in ("image", "token_ids", "padding_mask") if key in batch}
        if use_image and view:
            features["image"] = tta_view(features["image"], view)
        if use_image and preprocess is not None:
            features["image"] = preprocess(features["image"])
        x = features["image"] if inputs == "image" else features
        y = tf.one_hot(batch["label"], len(class_names), dtype=tf.float32)
        return (x, y) if weights is None else (x, y, tf.gather(weights, batch["label"]))

    return ds.map(finish, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
