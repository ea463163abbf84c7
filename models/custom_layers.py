"""The suite's own Keras layers, registered for saving and loading (`waste_benchmark>` names).

They live apart from the registry tables so that importing `models` does not import Keras; the
builders that use them import this module, and so does every path that loads a saved `.keras`
model (`register_custom_layers`).
"""

from __future__ import annotations

import keras

SERIALIZATION_PACKAGE = "waste_benchmark"


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class ConverterRescaling(keras.layers.Layer):
    """`x * scale + offset` per channel: a keras-hub ImageConverter without its resize.

    `scale`/`offset` are None, a number or one value per channel, exactly as the converter holds
    them.
    """

    def __init__(self, scale=None, offset=None, **kwargs):
        super().__init__(**kwargs)
        self.scale = _plain(scale)
        self.offset = _plain(offset)

    def call(self, images):
        x = keras.ops.cast(images, self.compute_dtype)
        if self.scale is not None:
            x = x * keras.ops.convert_to_tensor(self.scale, dtype=self.compute_dtype)
        if self.offset is not None:
            x = x + keras.ops.convert_to_tensor(self.offset, dtype=self.compute_dtype)
        return x

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "offset": self.offset}


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class TokenPool(keras.layers.Layer):
    """The class token of a `(batch, tokens, dim)` sequence; an already pooled `(batch, dim)` passes
    through."""

    def call(self, features):
        return features[:, 0, :] if len(features.shape) == 3 else features

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])


def _plain(value):
    """Converter values as JSON-friendly floats (they may arrive as numpy arrays or tuples)."""
    if value is None:
        return None
    if hasattr(value, "tolist"):
        value = value.tolist()
    return [float(v) for v in value] if isinstance(value, (list, tuple)) else float(value)


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class PromptSimilarity(keras.layers.Layer):
    """Image embedding -> softmax(logit_scale * cos(image, class text vector)); the class vectors
    are fixed weights."""

    def __init__(self, num_classes: int, dim: int, logit_scale: float, **kwargs):
        super().__init__(**kwargs)
        self.num_classes, self.dim, self.logit_scale = (
            int(num_classes),
            int(dim),
            float(logit_scale),
        )
        self.class_vectors = self.add_weight(
            shape=(self.num_classes, self.dim),
            initializer="zeros",
            trainable=False,
            name="class_vectors",
        )

    def call(self, image_embeddings):
        image = keras.ops.cast(image_embeddings, "float32")
        image = image / keras.ops.maximum(keras.ops.norm(image, axis=-1, keepdims=True), 1e-12)
        logits = self.logit_scale * keras.ops.matmul(image, keras.ops.transpose(self.class_vectors))
        return keras.ops.softmax(logits, axis=-1)

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "dim": self.dim,
            "logit_scale": self.logit_scale,
        }
