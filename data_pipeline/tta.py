"""Test-time augmentation: fixed, deterministic views of an evaluation batch, made on 0..255 pixels.

A model shown a photo, its mirror image and a few slightly zoomed-in crops, with its softmax
averaged over them, usually errs less than on the photo alone (timm, MMPretrain and fastai all offer
it). The views here are the same for every image and every run, so a cell's figures stay
reproducible, and they are made before the model family's `preprocess`, which is then applied to
each view exactly once (`make_dataset(..., view=i)`).

`--tta N` averages the first N views, in this order:
0 identity (the image as evaluated without TTA), 1 horizontal flip, 2 centre crop, 3 flipped centre
crop, 4-7 the top-left, top-right, bottom-left and bottom-right crops. A crop keeps `CROP_FRACTION`
of each side (at least one pixel), cut on whole pixels and resized back to the input size with the
pipeline's own resize (`resize_image`), so a crop is a mild zoom of the same input size.
"""

from __future__ import annotations

import tensorflow as tf

from data_pipeline.decode import resize_image
from data_pipeline.errors import DataError
from data_pipeline.tta_views import MAX_VIEWS, VIEWS, validate_tta  # noqa: F401  (re-exported)

CROP_FRACTION = 0.875  # timm's and torchvision's evaluation crop: an eighth of each side trimmed


def _crop(images: tf.Tensor, where: str) -> tf.Tensor:
    """A `CROP_FRACTION` crop of every image at `where` ("center" or "top_left", ...), resized back
    to full size."""
    height, width = int(images.shape[1]), int(images.shape[2])
    crop_h, crop_w = max(1, round(height * CROP_FRACTION)), max(1, round(width * CROP_FRACTION))
    if where == "center":
        top, left = (height - crop_h) // 2, (width - crop_w) // 2
    else:
        vertical, horizontal = where.split("_")
        top = 0 if vertical == "top" else height - crop_h
        left = 0 if horizontal == "left" else width - crop_w
    return resize_image(images[:, top : top + crop_h, left : left + crop_w, :], (height, width))


def tta_view(images: tf.Tensor, view: int) -> tf.Tensor:
    """View number `view` (see `VIEWS`) of a batch of float 0..255 images (n, height, width, 3);
    same shape.

    The height and width must be static (every batch `make_dataset` builds has them).
    """
    if not 0 <= view < MAX_VIEWS:
        raise DataError(
            f"test-time view {view} does not exist; there are {MAX_VIEWS} (0..{MAX_VIEWS - 1})"
        )
    name = VIEWS[view]
    images = tf.cast(images, tf.float32)
    if name == "identity":
        return images
    if name == "flip":
        return tf.reverse(images, axis=[2])
    if name.startswith("center_crop"):
        cropped = _crop(images, "center")
        return tf.reverse(cropped, axis=[2]) if name.endswith("flip") else cropped
    return _crop(images, name.removeprefix("crop_"))
