"""The one image decoder of the package: which files count as images, their pixels and content hash.

Scanning (content hashes, broken-file checks), training (`decode.decode_file` inside tf.data) and
prediction all decode through `decode_rgb`, so a hash describes exactly the pixels a model is fed,
and a phone photo is upright, a 16-bit PNG keeps its contrast and a huge image stays affordable
in every path alike. The scan decodes every image once here, so a broken file is found before
training starts rather than in the middle of an epoch, and identical pictures are recognised by
their pixels, not bytes.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import ExifTags, Image, ImageFile

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"})

# Longer sides above this are reduced by a whole factor before anything else sees the image (the
# result is over half this and at most this). Every model here takes 600 px or less, so the later
# antialiased resize still downsamples at least 3.4x, and a 12 MP phone photo (4032x3024) is left
# alone.
MAX_SIDE = 4096
# What one image may cost: PIL holds the pixels it decodes at their native size (JPEGs are decoded
# already reduced, by `draft`; other formats whole), 1-4 bytes each. Beyond this many pixels after
# that (a 12000x12000 PNG is 144 M: 432 MB of RGB before any reduction, 1.6-1.9 GB of RSS as the
# scan met it), an image is refused for size, named like an unreadable one, and never decoded.
MAX_PIXELS = 100_000_000
REFUSED_FOR_SIZE = "refused for size"
# Decodes of such images at once (scan threads, tf.data's parallel calls): each holds its
# full-size native pixels (432 MB for a 12000x12000 RGB PNG) until it is reduced.
_LARGE_DECODES = threading.BoundedSemaphore(2)
# Pixels converted to RGB at a time while reducing (~50 MB), so no full-size RGB copy is made
_STRIP_PIXELS = 4_000_000


class ImageTooLarge(ValueError):
    """An image whose decode would hold over `MAX_PIXELS` pixels: refused, never decoded."""


_READ_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)
_SIXTEEN_BIT_GREY = ("I;16", "I;16B", "I;16L", "I;16N")
_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

# PIL's own warning (two lines, from the warnings module) fires above 89 M pixels; every such image
# is over MAX_SIDE and gets this package's one-line warning instead.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
_warned: set[str] = set()
_warned_lock = threading.Lock()


def is_image_file(path: Path) -> bool:
    """Whether the scan considers `path` an image: an image extension (any case), not a hidden file.

    Hidden names include macOS `._x.jpg` resource forks, which carry an image extension but no
    image.
    """
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def decode_rgb(source: str | Path | BinaryIO) -> np.ndarray:
    """The first frame of an image file as upright RGB uint8 (height, width, 3), reduced when huge.

    - EXIF orientation is applied (phones store portraits sideways with an Orientation tag).
    - 16-bit greyscale keeps its high byte, as `tf.io.decode_png(dtype=uint8)` does (PIL's own
      conversion clips everything above 255 to white, making different images identical).
    - An image over `MAX_SIDE` px on its long side is reduced by a whole factor (JPEG decodes at
      1/2..1/8 scale directly; other formats are box-averaged strip by strip), with one warning.
    - One that would still hold more than `MAX_PIXELS` pixels when decoded raises `ImageTooLarge`
      (its header is read, its pixels never are).
    Raises PIL's own errors for unreadable, truncated or non-image files. Truncated files must fail,
    not load half grey, so PIL's tolerance for them is switched off before loading.
    """
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    with Image.open(source) as img:
        width, height = img.size  # from the header: nothing is decoded yet
        if max(width, height) > MAX_SIDE and img.format == "JPEG":
            factor = math.ceil(max(width, height) / MAX_SIDE)  # libjpeg decodes at 1/2, 1/4 or 1/8
            img.draft(None, (math.ceil(width / factor), math.ceil(height / factor)))
        decoded = img.size[0] * img.size[1]  # what load() would hold (a JPEG: once drafted)
        if decoded > MAX_PIXELS:
            raise ImageTooLarge(
                f"{REFUSED_FOR_SIZE}: {width}x{height} px, {decoded / 1e6:.0f} M "
                f"pixels to decode; the limit is {MAX_PIXELS // 10**6} M per image"
            )
        if max(width, height) <= MAX_SIDE:
            img.load()
            return _upright(img, _rgb_array(img))
        with _LARGE_DECODES:
            return _upright(img, _reduced(img, source, (width, height)))


def _rgb_array(img: Image.Image) -> np.ndarray:
    if img.mode in _SIXTEEN_BIT_GREY:
        grey = (np.asarray(img).astype(np.uint16) >> 8).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    return np.asarray(img.convert("RGB"))


def _reduced(
    img: Image.Image, source: str | Path | BinaryIO, original: tuple[int, int]
) -> np.ndarray:
    """A huge image (`original` px; a JPEG is drafted smaller already) reduced so its long side
    is at most MAX_SIDE, without a full-size RGB copy."""
    img.load()
    factor = math.ceil(max(img.size) / MAX_SIDE)
    rows = factor * max(
        1, _STRIP_PIXELS // (img.width * factor)
    )  # a multiple of the factor: reduces as the whole would
    reduced = []
    for top in range(
        0, img.height, rows
    ):  # each strip is reduced at once, so only one is ever held in RGB
        strip = _rgb_array(img.crop((0, top, img.width, min(top + rows, img.height))))
        reduced.append(np.asarray(Image.fromarray(strip).reduce(factor)) if factor > 1 else strip)
    pixels = np.concatenate(reduced, axis=0)
    _warn_once(source, original, pixels.shape)
    return pixels


def _warn_once(
    source: str | Path | BinaryIO, original: tuple[int, int], shape: tuple[int, ...]
) -> None:
    name = (
        str(source)
        if isinstance(source, str | Path)
        else getattr(source, "name", "an in-memory image")
    )
    with _warned_lock:
        if name in _warned:
            return
        _warned.add(name)
    logger.warning(
        f"{name} is {original[0]}x{original[1]} px; it is read reduced to {shape[1]}x{shape[0]} "
        f"(images over {MAX_SIDE} px a side are, to bound memory; models see them resized anyway)"
    )


def _upright(img: Image.Image, pixels: np.ndarray) -> np.ndarray:
    """`pixels` turned as the file's EXIF Orientation tag says (1 or none: as stored)."""
    method = _ORIENTATION.get(img.getexif().get(ExifTags.Base.Orientation, 1))
    return pixels if method is None else np.asarray(Image.fromarray(pixels).transpose(method))


def content_hash(pixels: np.ndarray) -> str:
    """sha1 of the decoded pixels and their shape: equal for the same picture saved twice under any
    name."""
    digest = hashlib.sha1(repr(pixels.shape).encode())
    digest.update(np.ascontiguousarray(pixels).tobytes())
    return digest.hexdigest()


def read_error(err: BaseException) -> str:
    """A short reason an image is unreadable, for messages and the skipped list."""
    if isinstance(err, Image.UnidentifiedImageError):
        return "not an image"
    return str(err).splitlines()[0] if str(err) else type(err).__name__


def inspect_image(path: str | Path) -> tuple[str, str]:
    """`(content_hash, "")` for a readable image, or `("", reason)` with a short reason it is
    unreadable."""
    try:
        return content_hash(decode_rgb(path)), ""
    except _READ_ERRORS as err:
        return "", read_error(err)


def read_image(path: str | Path) -> tuple[np.ndarray | None, str]:
    """`(pixels, "")` for a readable image, or `(None, reason)`: `decode_rgb` without raising."""
    try:
        return decode_rgb(path), ""
    except _READ_ERRORS as err:
        return None, read_error(err)


def image_problem(path: str | Path) -> str:
    """Why `path` is not a readable image ("not an image", "image file is truncated", ...), or ""
    when it is."""
    return read_image(path)[1]
