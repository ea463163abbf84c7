"""Model inputs for new files, outside tf.data, with exactly the training pipeline's decoding and
resizing."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from data_pipeline.decode import image_hw, resize_image
from data_pipeline.errors import DataError
from data_pipeline.images import read_image
from data_pipeline.tta import tta_view


def make_prediction_batch(
    paths: Sequence[str | Path],
    image_size: int | tuple[int, int],
    preprocess: Callable | None = None,
    view: int = 0,
) -> np.ndarray:
    """Decoded, resized, preprocessed images, float32 of shape (n, height, width, 3).

    Each file is decoded once by `images.decode_rgb`, the decoder `decode_file` runs in training
    (upright, 16-bit and huge images handled alike), so a model is shown the pixels it was trained
    on; a truncated or non-image file is a clear DataError.
    `preprocess` receives a tf tensor, never a numpy array: Keras' "tf"-mode `preprocess_input`
    rescales float numpy arrays in place. `view` is a test-time view (`tta.VIEWS`), made before
    `preprocess` as `make_dataset` makes it.
    """
    size = image_hw(image_size)
    images = []
    for path in paths:
        pixels, reason = read_image(path)
        if pixels is None:
            raise DataError(
                f"cannot read image {path} ({reason}); pass a readable jpg, png, bmp, gif or webp "
                "file"
            )
        images.append(resize_image(tf.constant(pixels), size))
    batch = tf.stack(images) if images else tf.zeros((0, *size, 3), tf.float32)
    batch = tta_view(batch, view) if view else batch
    return np.asarray(batch if preprocess is None else preprocess(batch), dtype=np.float32)
