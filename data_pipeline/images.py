"""Reading image files with PIL: which files count as images, their decoded pixels and content hash.

The scan decodes every image once here, so a broken file is found before training starts rather
than in the middle of an epoch, and identical pictures are recognised by their pixels, not bytes.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageFile

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"})

_READ_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


def is_image_file(path: Path) -> bool:
    """Whether the scan considers `path` an image: an image extension (any case), not a hidden file.

    Hidden names include macOS `._x.jpg` resource forks, which carry an image extension but no image.
    """
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def decode_rgb(path: str | Path | BinaryIO) -> np.ndarray:
    """The first frame of an image file as an RGB uint8 array (height, width, 3).

    Raises PIL's own errors for unreadable, truncated or non-image files. Truncated files must fail,
    not load half grey, so PIL's tolerance for them is switched off before loading.
    """
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    with Image.open(path) as img:
        img.load()
        return np.asarray(img.convert("RGB"))


def content_hash(pixels: np.ndarray) -> str:
    """sha1 of the decoded pixels and their shape: equal for the same picture saved twice under any name."""
    digest = hashlib.sha1(repr(pixels.shape).encode())
    digest.update(np.ascontiguousarray(pixels).tobytes())
    return digest.hexdigest()


def inspect_image(path: str | Path) -> tuple[str, str]:
    """`(content_hash, "")` for a readable image, or `("", reason)` with a short reason it is unreadable."""
    try:
        return content_hash(decode_rgb(path)), ""
    except Image.UnidentifiedImageError:
        return "", "not an image"
    except _READ_ERRORS as err:
        return "", (str(err).splitlines()[0] if str(err) else type(err).__name__)
