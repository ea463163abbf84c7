"""Decoding and resizing inside TensorFlow, shared by the training pipeline and prediction on new files.

Both paths resize with the same call (`resize_image`), so a model sees the same pixels at
prediction time as it saw in training.
"""
from __future__ import annotations

import io

import numpy as np
import tensorflow as tf

from data_pipeline.images import decode_rgb

# Magic bytes of the formats tf.io.decode_image reads; anything else goes through PIL.
_TF_SIGNATURES = ((0, b"\xff\xd8\xff"), (0, b"\x89PNG"), (0, b"GIF8"), (0, b"BM"), (8, b"WEBP"))


def image_hw(image_size: int | tuple[int, int]) -> tuple[int, int]:
    """`(height, width)` from a square size or a pair."""
    if isinstance(image_size, int):
        return image_size, image_size
    height, width = image_size
    return int(height), int(width)


def resize_image(image: tf.Tensor, size: tuple[int, int]) -> tf.Tensor:
    """Bilinear with antialiasing (so downscaling does not alias), float32 in 0..255."""
    return tf.image.resize(tf.cast(image, tf.float32), size, method="bilinear", antialias=True)


def _tf_can_decode(contents: tf.Tensor) -> tf.Tensor:
    checks = [tf.equal(tf.strings.substr(contents, start, len(magic)), magic) for start, magic in _TF_SIGNATURES]
    return tf.reduce_any(tf.stack(checks))


def _pil_decode(contents: bytes | np.ndarray) -> np.ndarray:
    """`contents` arrives from tf.numpy_function as bytes in tf.data, as a 0-d object array when eager."""
    return decode_rgb(io.BytesIO(contents.item() if isinstance(contents, np.ndarray) else contents))


def decode_file(path: tf.Tensor) -> tf.Tensor:
    """First frame of an image file as uint8 RGB: tf.io for jpeg/png/gif/bmp/webp, PIL for the rest (e.g. TIFF)."""
    contents = tf.io.read_file(path)
    image = tf.cond(
        _tf_can_decode(contents),
        lambda: tf.io.decode_image(contents, channels=3, expand_animations=False),
        lambda: tf.numpy_function(_pil_decode, [contents], tf.uint8, stateful=False),
    )
    image.set_shape([None, None, 3])
    return image
