"""Grad-CAM (Selvaraju et al., 2017): which regions of an image drove a classifier's decision.

The math only: no files, no figures (`benchmark/inference/explain.py` does those). Our image models
nest a Keras-applications backbone as one sub-model (model -> backbone -> conv layers) and fusion
models take a dict of inputs, so the feature map Grad-CAM needs often sits inside the nested
backbone, out of reach of `keras.Model(model.input, layer.output)`. `feature_model` rebuilds the
outer graph around the unchanged, weight-sharing layers so that one forward pass returns both the
feature map and the probabilities, and a `tf.GradientTape` can differentiate one with respect to the
other.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from benchmark.errors import UsageError

# Pooling that keeps a 4-D output only coarsens the map it is given, so the map taken just before
# it is as informative and twice as sharp (simple_cnn ends every block with max pooling).
_SPATIAL_POOLING = (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)
# log(0) guard for classes whose probability underflowed; their gradient is zero either way.
_TINY = 1e-30


def _output_rank(layer: keras.Layer) -> int:
    """Rank of a layer's single output (0 for inputs and multi-output layers, which cannot be the
    map)."""
    if isinstance(layer, keras.layers.InputLayer):
        return 0
    try:
        outputs = (
            layer.outputs if isinstance(layer, keras.Model) else keras.tree.flatten(layer.output)
        )
    except ValueError:  # a layer called more than once has no single output to explain
        return 0
    return len(outputs[0].shape) if len(outputs) == 1 else 0


def _descend(layer: keras.Layer) -> list[keras.Layer]:
    """`[layer]`, or the path to the feature map inside it when `layer` is a nested model."""
    return [layer, *find_feature_layer(layer)] if isinstance(layer, keras.Model) else [layer]


def find_feature_layer(model: keras.Model) -> list[keras.Layer]:
    """Path from `model` down to its last convolutional feature map, e.g. `[backbone, backbone's
    last activation]`.

    The map is the last layer whose output is 4-D: everything after it (global pooling, dense
    layers, a text branch) has no spatial layout left to explain. Trailing max/average pooling is
    skipped (see `_SPATIAL_POOLING`), and a nested model is searched inside, since its own output
    is the feature map of its last layer.
    """
    candidates = [layer for layer in model.layers if _output_rank(layer) == 4]
    while len(candidates) > 1 and isinstance(candidates[-1], _SPATIAL_POOLING):
        candidates.pop()
    if not candidates:
        raise UsageError(
            f"model {model.name!r} has no layer with a 4-D (image feature map) output to explain"
        )
    return _descend(candidates[-1])


def _all_layers(model: keras.Model) -> list[list[keras.Layer]]:
    """Paths to every layer of `model`, nested models' layers included (outer layers first)."""
    paths = [[layer] for layer in model.layers]
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            paths.extend([layer, *inner] for inner in _all_layers(layer))
    return paths


def layer_path(model: keras.Model, name: str) -> list[keras.Layer]:
    """Path to the layer called `name`, searched in `model` and every nested sub-model
    (`--layer`)."""
    paths = _all_layers(model)
    for path in paths:
        if path[-1].name == name:
            if _output_rank(path[-1]) != 4:
                raise UsageError(
                    f"--layer {name!r} has no 4-D feature-map output; pick a convolutional layer, "
                    f"e.g. {find_feature_layer(model)[-1].name!r}"
                )
            return [*path[:-1], *_descend(path[-1])]
    close = difflib.get_close_matches(
        name, [p[-1].name for p in paths if _output_rank(p[-1]) == 4], n=3
    )
    default = find_feature_layer(model)[-1].name
    hint = (
        f"did you mean {', '.join(map(repr, close))}?" if close else f"the default is {default!r}"
    )
    raise UsageError(f"--layer {name!r} is not a layer of model {model.name!r}; {hint}")


def feature_model(model: keras.Model, path: list[keras.Layer]) -> keras.Model:
    """A model with `model`'s inputs and two outputs: the feature map at the end of `path`, and
    `model`'s output.

    A layer of `model` itself is read off its graph. One inside a nested sub-model is reached by
    giving the sub-model two outputs the same way, then cloning `model` with every layer reused
    (`clone_function` returns it unchanged, so the weights are shared, not copied) and that one
    call swapped for the two-output version.
    """
    first, *rest = path
    if not rest:
        return keras.Model(model.input, [first.output, model.output])
    inner = feature_model(first, rest)
    captured: list = []

    def call(layer, *args, **kwargs):
        if layer is not first:
            return layer(*args, **kwargs)
        features, output = inner(*args, **kwargs)
        captured.append(features)
        return output

    rebuilt = keras.models.clone_model(
        model, clone_function=lambda layer: layer, call_function=call
    )
    return keras.Model(rebuilt.input, [captured[0], rebuilt.output])


@dataclass
class Explanation:
    """One image's Grad-CAM.

    Args:
        heatmap: (h, w) at the feature map's resolution, scaled to 0..1; all zero when nothing at
            that layer speaks for the class.
        probabilities: the model's class probabilities for the image.
        class_index: the class explained (the predicted one unless another was asked for).
    """

    heatmap: np.ndarray
    probabilities: np.ndarray
    class_index: int


class GradCam:
    """Grad-CAM for one classifier, at its last feature map or at the layer named `layer`.

    Args:
        model: a classifier whose output is softmax probabilities (every model in the registry).
        layer: name of the layer to explain at, found in nested sub-models too. Defaults to the
            last convolutional feature map (`find_feature_layer`).
    """

    def __init__(self, model: keras.Model, layer: str | None = None):
        self.path = layer_path(model, layer) if layer else find_feature_layer(model)
        self.layer_name = self.path[-1].name
        self.model = feature_model(model, self.path)
        # Traced once per input shape: eager, one MobileNetV3Small image at 64 px took 0.38 s on 2
        # CPU cores, the traced graph 0.01 s after a 1.8 s trace, so a folder of images pays it back
        # at once.
        self._gradients = tf.function(self._feature_gradients, reduce_retracing=True)

    def _feature_gradients(self, inputs, class_index: tf.Tensor):
        """Feature map, gradient of the class score with respect to it, probabilities, and the class
        (-1: predicted).

        The score is the class logit recovered from the softmax up to a constant all classes share,
        log p_c - mean_j log p_j = z_c - mean_j z_j: Grad-CAM is defined on logits, and the
        probability itself saturates when the model is confident, leaving vanishing gradients.
        """
        with tf.GradientTape() as tape:
            features, probabilities = self.model(inputs, training=False)
            features = tf.cast(features, tf.float32)  # mixed-precision maps: weigh them in float32
            probabilities = tf.cast(probabilities[0], tf.float32)
            index = tf.where(
                class_index < 0, tf.argmax(probabilities, output_type=tf.int32), class_index
            )
            log_p = tf.math.log(probabilities + _TINY)
            score = tf.gather(log_p, index) - tf.reduce_mean(log_p)
        return features[0], tape.gradient(score, features)[0], probabilities, index

    def explain(self, inputs, class_index: int | None = None) -> Explanation:
        """Grad-CAM of the first image in `inputs` (a batch, or a dict of batches for fusion
        models)."""
        requested = tf.constant(-1 if class_index is None else class_index, tf.int32)
        features, gradients, probabilities, index = self._gradients(inputs, requested)
        channel_weights = tf.reduce_mean(
            gradients, axis=(0, 1)
        )  # importance of each channel: its mean gradient
        cam = tf.nn.relu(tf.reduce_sum(features * channel_weights, axis=-1)).numpy()
        peak = cam.max()
        return Explanation(
            heatmap=cam / peak if peak > 0 else cam,
            probabilities=probabilities.numpy(),
            class_index=int(index),
        )


def upsample(heatmap: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The heatmap stretched bilinearly to `(height, width)`, as the model's input was resized (no
    crop)."""
    resized = tf.image.resize(heatmap[..., None].astype(np.float32), size, method="bilinear")
    return np.clip(resized.numpy()[..., 0], 0.0, 1.0)
