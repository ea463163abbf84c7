"""Model inputs for new files, outside tf.data, with the training pipeline's decoding and resizing."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image

from data_pipeline.decode import image_hw, resize_image
from data_pipeline.errors import DataError
from data_pipeline.images import decode_rgb


def make_prediction_batch(paths: Sequence[str | Path], image_size: int | tuple[int, int],
                          preprocess: Callable | None = None) -> np.ndarray:
    """Decoded (PIL), resized, preprocessed images, float32 of shape (n, height, width, 3).

    `preprocess` receives a tf tensor, never a numpy array: Keras' "tf"-mode `preprocess_input`
    rescales float numpy arrays in place, which would corrupt a caller's array.
    """
    size = image_hw(image_size)
    images = []
    for path in paths:
        try:
            pixels = decode_rgb(path)
        except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as err:
            raise DataError(f"cannot read image {path} ({str(err).splitlines()[0] if str(err) else type(err).__name__}); "
                            "pass a readable jpg, png, bmp, gif or webp file") from err
        images.append(resize_image(pixels, size))
    batch = tf.stack(images) if images else tf.zeros((0, *size, 3), tf.float32)
    return np.asarray(batch if preprocess is None else preprocess(batch), dtype=np.float32)
