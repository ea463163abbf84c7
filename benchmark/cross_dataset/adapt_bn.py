"""Test-time BatchNorm adaptation (`evaluate --adapt-bn`, `robustness --adapt-bn`): the saved
model's BatchNorm statistics re-estimated on the unlabelled target images, everything else
untouched.

A network trained on one camera, light and background normalises every BatchNorm input with the
mean and variance it saw in training. On photos from elsewhere those statistics are off (a brighter
set shifts every channel's mean), and the layers after them see inputs they never learnt on.
Re-estimating the statistics on the target images (AdaBN, Li et al. 2016; Schneider et al. 2020)
repairs that part of the shift without a label and without a gradient step: the learnt weights,
gamma and beta included, stay as trained.

Two ways, both from the same estimate (`adapt_batch_norm`: each BatchNorm layer's sample-weighted
average over the batches of its batch statistics):

* reset (`adapt_batch_norm`): the moving statistics become the target's. Right for a network
  trained end to end on its source, whose moving statistics are the source's;
* shift (`shift_batch_norm`, what `--adapt-bn` uses): the moving statistics move by how the
  target's estimate differs from the same estimate on the source's own training images
  (`reference_statistics`). A backbone fine-tuned with frozen BatchNorm keeps its pretraining
  statistics, which are not its source's: a reset changes its features even on unshifted photos.

Only the BatchNorm layers run in training mode during an estimate (their `call` is forced to
`training=True`); dropout and any other layer with a training behaviour stay in inference mode,
so the statistics are those of the network that will score. The model is changed in memory only:
nothing is saved.
"""

from __future__ import annotations

from collections.abc import Iterable

import keras
import numpy as np


def batch_norm_layers(model) -> list:
    """Every BatchNormalization layer of `model`, nested backbones included, each once."""
    found, seen = [], set()

    def walk(layer) -> None:
        if id(layer) in seen:
            return
        seen.add(id(layer))
        if isinstance(layer, keras.layers.BatchNormalization):
            found.append(layer)
        for inner in getattr(layer, "layers", []) or []:
            walk(inner)

    walk(model)
    return found


def adapt_batch_norm(model, batches: Iterable) -> int:
    """Re-estimates every BatchNorm layer's moving statistics on `batches` (model inputs, no
    labels); returns how many layers were adapted.

    Batch k of n images blends in with momentum seen / (seen + n), so the result is the
    sample-weighted mean of the batch means (and of the batch variances), whatever the statistics
    were before: a reset. The layers' `trainable` and `momentum` are restored afterwards.
    """
    layers = batch_norm_layers(model)
    if not layers:
        return 0
    saved = [(layer.trainable, layer.momentum) for layer in layers]

    def forced(layer):
        original = type(layer).call

        def call(inputs, training=None, mask=None):
            return original(layer, inputs, training=True, mask=mask)

        return call

    try:
        for layer in layers:
            layer.trainable = True  # Keras uses batch statistics only in a trainable BatchNorm
            object.__setattr__(layer, "call", forced(layer))
        seen = 0
        for batch in batches:
            size = len(next(iter(batch.values())) if isinstance(batch, dict) else batch)
            for layer in layers:
                layer.momentum = seen / (seen + size)
            model(batch, training=False)  # eager: each layer reads its momentum on this call
            seen += size
    finally:
        for layer, (trainable, momentum) in zip(layers, saved):
            if "call" in vars(layer):
                object.__delattr__(layer, "call")
            layer.trainable, layer.momentum = trainable, momentum
    return len(layers)


def statistics(model) -> list[tuple[np.ndarray, np.ndarray]]:
    """(moving mean, moving variance) of every BatchNorm layer, copied: to compare before and
    after."""
    return [
        (np.array(layer.moving_mean), np.array(layer.moving_variance))
        for layer in batch_norm_layers(model)
    ]


def adapted_probabilities(
    saved,
    files: list,
    captions: list[str] | None = None,
    *,
    batch_size: int = 32,
    reference: tuple[list, list[str] | None] | None = None,
) -> tuple[np.ndarray, int]:
    """What `probabilities_for_files` shows for `files` after adapting `saved.model`'s BatchNorm
    statistics to those same files (fed exactly as scoring feeds them: size, preprocessing, view
    0), and how many layers were adapted. Labels are never read.

    With `reference` (the source's own image files and captions), the statistics are shifted by
    how `files` differ from them (`shift_batch_norm`); without, they are reset to the files' own
    (`adapt_batch_norm`)."""
    from benchmark.inference.predict import model_inputs, probabilities_for_files

    def batches(paths, texts):
        for start in range(0, len(paths), batch_size):
            caption = None if texts is None else texts[start : start + batch_size]
            yield model_inputs(saved, paths[start : start + batch_size], caption)

    if reference is None:
        layers = adapt_batch_norm(saved.model, batches(files, captions))
    else:
        source = reference_statistics(saved.model, batches(*reference))
        layers = shift_batch_norm(saved.model, batches(files, captions), source)
    return probabilities_for_files(saved, files, captions, batch_size=batch_size), layers


def restore_statistics(model, saved: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """Puts back what `statistics(model)` copied: the model as it was before adapting."""
    for layer, (mean, variance) in zip(batch_norm_layers(model), saved, strict=True):
        layer.moving_mean.assign(mean)
        layer.moving_variance.assign(variance)


# Training images per class whose statistics a target is measured against (`shift_batch_norm`).
REFERENCE_PER_CLASS = 32


def reference_rows(split):
    """Up to `REFERENCE_PER_CLASS` of a split's training images a class (by content hash, so the
    choice does not follow file names): the source photos a target's statistics are compared
    with. Never a test or validation image."""
    train = split.subset("train")
    return train.sort_values(["label", "content_hash"]).groupby("label").head(REFERENCE_PER_CLASS)


# A reference variance below this is a dead channel: its target variance is kept as it was.
MIN_VARIANCE = 1e-6
MAX_VARIANCE_RATIO = 100.0  # bounds the variance factor either way, so few images cannot blow it up


def reference_statistics(model, batches: Iterable) -> list[tuple[np.ndarray, np.ndarray]]:
    """What `adapt_batch_norm` would estimate on `batches` (the source's own clean images), with
    the model handed back unchanged: the reference `shift_batch_norm` measures a target against."""
    saved = statistics(model)
    try:
        adapt_batch_norm(model, batches)
        return statistics(model)
    finally:
        restore_statistics(model, saved)


def shift_batch_norm(model, batches: Iterable, reference) -> int:
    """Moves every BatchNorm layer's statistics by how the target `batches` differ from the
    `reference` (`reference_statistics` of source images): mean + (target - reference), variance x
    (target / reference). Returns how many layers were adapted.

    Why not the reset `adapt_batch_norm` does: a backbone fine-tuned with its BatchNorm layers
    frozen keeps its pretraining statistics (ImageNet's), and its head learnt on features
    normalised by them. Resetting them to a new set's statistics changes the features even where
    the set is not shifted at all (measured: TrashNet's clean test photos fell from 0.949 to 0.775,
    docs/shift-robustness.md). Shifting by the difference leaves a model on photos like its
    training photos as it was, and moves it only as far as the target moved.
    """
    layers = batch_norm_layers(model)
    if not layers:
        return 0
    saved = statistics(model)
    adapt_batch_norm(model, batches)
    target = statistics(model)
    for layer, (mean, variance), (t_mean, t_var), (r_mean, r_var) in zip(
        layers, saved, target, reference, strict=True
    ):
        ratio = np.where(r_var > MIN_VARIANCE, t_var / np.maximum(r_var, MIN_VARIANCE), 1.0)
        ratio = np.clip(ratio, 1 / MAX_VARIANCE_RATIO, MAX_VARIANCE_RATIO)
        layer.moving_mean.assign((mean + t_mean - r_mean).astype(mean.dtype))
        layer.moving_variance.assign((variance * ratio).astype(variance.dtype))
    return len(layers)
