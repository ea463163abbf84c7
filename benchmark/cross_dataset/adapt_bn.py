"""Test-time BatchNorm adaptation (`evaluate --adapt-bn`): the saved model's BatchNorm statistics
re-estimated on the unlabelled target images, everything else untouched.

A network trained on one camera, light and background normalises every BatchNorm input with the
mean and variance it saw in training. On photos from elsewhere those statistics are off (a brighter
set shifts every channel's mean), and the layers after them see inputs they never learnt on.
Re-estimating the statistics on the target images (AdaBN, Li et al. 2016; Schneider et al. 2020)
repairs that part of the shift without a label and without a gradient step: the learnt weights,
gamma and beta included, stay as trained.

The statistics are reset, not blended: each BatchNorm layer's moving mean and variance become the
sample-weighted average over the target batches of its batch statistics. Only the BatchNorm layers
run in training mode during that pass (their `call` is forced to `training=True`); dropout and
any other layer with a training behaviour stay in inference mode, so the statistics are those of
the network that will score. The model is changed in memory only: nothing is saved.
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
    saved, files: list, captions: list[str] | None = None, *, batch_size: int = 32
) -> tuple[np.ndarray, int]:
    """What `probabilities_for_files` shows for `files` after adapting `saved.model`'s BatchNorm
    statistics on those same files (fed exactly as scoring feeds them: size, preprocessing, view
    0), and how many layers were adapted. Labels are never read."""
    from benchmark.inference.predict import model_inputs, probabilities_for_files

    def batches():
        for start in range(0, len(files), batch_size):
            caption = None if captions is None else captions[start : start + batch_size]
            yield model_inputs(saved, files[start : start + batch_size], caption)

    layers = adapt_batch_norm(saved.model, batches())
    return probabilities_for_files(saved, files, captions, batch_size=batch_size), layers


def restore_statistics(model, saved: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """Puts back what `statistics(model)` copied: the model as it was before adapting."""
    for layer, (mean, variance) in zip(batch_norm_layers(model), saved, strict=True):
        layer.moving_mean.assign(mean)
        layer.moving_variance.assign(variance)
