"""Which uploads the app accepts: images of a kind and size it can afford, checked before decoding.

PIL's `Image.open` reads only a file's header; the pixels are decoded later, by the model's own
reader. So the size a decode would cost is known first, and refused there: PIL itself only warns
between `MAX_IMAGE_PIXELS` and twice that (a 12000x12000 PNG, 144 M pixels, passes its check with a
warning and would take ~430 MB of RGB to decode).
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

# Bytes of one photo: a 48 MP phone JPEG is 10-20 MB; more is a raw scan or not a photo.
MAX_BYTES = 25 * 1024 * 1024
# Pixels of one photo: a 48-50 MP phone sensor (8160x6120) fits; a 12000x12000 image does not.
MAX_PIXELS = 64_000_000
# Photos per request, so one batch cannot queue minutes of Grad-CAM.
MAX_FILES = 64
# What the model's reader decodes (data_pipeline.IMAGE_EXTENSIONS), by PIL format name.
SUFFIXES = {
    "JPEG": ".jpg",
    "PNG": ".png",
    "BMP": ".bmp",
    "GIF": ".gif",
    "WEBP": ".webp",
    "MPO": ".jpg",
}
ACCEPTED = "jpg, png, bmp, gif or webp"


class Refused(ValueError):
    """An upload the app will not decode; the message is the one line the page shows."""


@dataclass
class Upload:
    """An accepted photo: its name as uploaded, its bytes, its real format's suffix, its size."""

    name: str
    data: bytes
    suffix: str
    width: int
    height: int


def safe_stem(name: str) -> str:
    """The upload's file name reduced to a harmless stem (fusion models read a caption from it)."""
    stem = re.sub(r"[^\w.-]+", "_", name.rsplit("/", 1)[-1].rsplit("\\", 1)[-1])
    stem = stem.rsplit(".", 1)[0].strip("._") if "." in stem else stem.strip("._")
    return stem[:80] or "photo"


def check_upload(name: str, data: bytes, size: int | None = None) -> Upload:
    """The upload if it is an image within `MAX_BYTES` and `MAX_PIXELS`, else `Refused` saying why.

    Judged by content, not name: a text file called `.jpg` is refused, a PNG called `.jpg` kept.
    `size` is the upload's full size when only its first bytes were read.
    """
    size = len(data) if size is None else size
    if not size:
        raise Refused(f"{name}: the file is empty; choose a {ACCEPTED} photo")
    if size > MAX_BYTES:
        raise Refused(
            f"{name}: {size / 2**20:.1f} MB is too large (at most {MAX_BYTES // 2**20} MB); "
            "send a smaller photo"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:  # the header only: nothing is decoded
                kind, (width, height) = image.format, image.size
    except Image.DecompressionBombError:
        raise Refused(_too_many_pixels(name, None)) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise Refused(f"{name}: not an image the app can read; choose a {ACCEPTED} photo") from None
    if kind not in SUFFIXES:
        raise Refused(f"{name}: {kind} images are not accepted; choose a {ACCEPTED} photo")
    if width * height > MAX_PIXELS:
        raise Refused(_too_many_pixels(name, (width, height)))
    return Upload(name, data, SUFFIXES[kind], width, height)


def _too_many_pixels(name: str, size: tuple[int, int] | None) -> str:
    shown = f"{size[0]}x{size[1]} pixels" if size else "its pixel count"
    return (
        f"{name}: {shown} is too large to decode (at most {MAX_PIXELS // 1_000_000} megapixels); "
        "send a smaller photo"
    )
