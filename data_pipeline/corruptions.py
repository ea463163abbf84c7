"""Common image corruptions at five severities, ImageNet-C style, as pure numpy/PIL transforms.

A model that scores well on clean test photos may still fail on the photos a bin camera takes:
noisy, blurred, over-compressed, small, badly lit, tinted or half hidden. Each corruption here is
one small function of an image, a severity's parameter and a random generator; its five parameters
are plain data in `SEVERITIES` (levels after Hendrycks & Dietterich's ImageNet-C where it has the
corruption). Spatial parameters (blur radii, occluder size) are given for a 224 px image and scale
with the image's side, so a 128 px model sees the same blur relative to the object as a 224 px one.

Written here rather than taken from `imagecorruptions` (unmaintained since 2020: it calls removed
scikit-image and SciPy APIs, needs OpenCV and draws from NumPy's global generator) or
`albumentations` (installs OpenCV and three other packages, and has no severity levels): a few dozen
lines of numpy, SciPy and Pillow, which the suite already pins.

Deterministic: every random draw comes from a generator seeded by the image's key (the run passes
its content hash) and the corruption, so two runs, or two cells, corrupt an image identically
whatever the batch it sits in. The severity only scales what was drawn (the same noise pattern,
streak direction, hue or occluder place, stronger), so the five levels of an image are nested.
"""

from __future__ import annotations

import io
import math
import zlib
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image
from scipy.signal import fftconvolve

REFERENCE_SIDE = 224  # the side the spatial parameters below are given for
MAX_SEVERITY = 5

# Corruption -> its parameter at severities 1..5 (plain data; the functions below read them).
SEVERITIES: dict[str, tuple[float, ...]] = {
    "gaussian_noise": (0.08, 0.12, 0.18, 0.26, 0.38),  # std as a fraction of 255 (ImageNet-C)
    "defocus_blur": (3, 4, 6, 8, 10),  # disk radius in px at 224 (ImageNet-C)
    "motion_blur": (6, 10, 14, 18, 24),  # streak length in px at 224, random direction
    "jpeg_compression": (25, 18, 15, 10, 7),  # JPEG quality (ImageNet-C)
    "low_resolution": (0.6, 0.5, 0.4, 0.3, 0.25),  # downscale factor, then back up (ImageNet-C)
    "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),  # added to every channel, fraction of 255
    "contrast": (0.4, 0.3, 0.2, 0.1, 0.05),  # kept share of the deviation from the mean
    "colour_cast": (0.1, 0.2, 0.3, 0.4, 0.5),  # white-balance gain shift, random hue direction
    "occlusion": (0.05, 0.1, 0.2, 0.3, 0.4),  # share of the image a grey square hides
}
CORRUPTIONS = tuple(SEVERITIES)


def _scale(image: np.ndarray) -> float:
    return min(image.shape[:2]) / REFERENCE_SIDE


def _convolve(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """`image` (h, w, 3) convolved with a 2-d kernel, edges reflected (no dark border)."""
    if kernel.shape == (1, 1):
        return image
    pad_h, pad_w = kernel.shape[0] // 2, kernel.shape[1] // 2
    padded = np.pad(image, ((pad_h, pad_h), (pad_w, pad_w), (0, 0)), mode="reflect")
    return fftconvolve(padded, kernel[:, :, None], mode="valid", axes=(0, 1))


def _disk(radius: float, supersample: int = 8) -> np.ndarray:
    """A defocus kernel: each pixel weighted by the share of it the disk covers (so a radius under
    half a pixel is no blur, and the blur grows smoothly with the radius)."""
    half = math.ceil(radius + 0.5)
    offsets = (np.arange(supersample) + 0.5) / supersample - 0.5
    grid = np.arange(-half, half + 1)
    fine = (grid[:, None] + offsets[None, :]).ravel()
    inside = (fine[:, None] ** 2 + fine[None, :] ** 2) <= radius**2
    n = 2 * half + 1
    kernel = inside.reshape(n, supersample, n, supersample).mean(axis=(1, 3))
    kernel = kernel[kernel.any(axis=1)][:, kernel.any(axis=0)]
    return kernel / kernel.sum() if kernel.sum() else np.ones((1, 1))


def _streak(length: float, angle: float) -> np.ndarray:
    """A straight motion-blur kernel of `length` px at `angle` (radians), bilinearly drawn."""
    if length < 1:
        return np.ones((1, 1))
    half = math.ceil(length / 2) + 1
    kernel = np.zeros((2 * half + 1, 2 * half + 1))
    for t in np.linspace(-length / 2, length / 2, int(4 * length) + 1):
        x, y = half + t * math.cos(angle), half + t * math.sin(angle)
        x0, y0 = int(math.floor(x)), int(math.floor(y))
        fx, fy = x - x0, y - y0
        kernel[y0, x0] += (1 - fx) * (1 - fy)
        kernel[y0, x0 + 1] += fx * (1 - fy)
        kernel[y0 + 1, x0] += (1 - fx) * fy
        kernel[y0 + 1, x0 + 1] += fx * fy
    return kernel / kernel.sum()


def _pil(image: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(np.rint(image), 0, 255).astype(np.uint8))


def gaussian_noise(image, level, rng):
    """Sensor noise: independent normal noise on every pixel and channel."""
    return image + rng.normal(0.0, level * 255.0, image.shape)


def defocus_blur(image, level, rng):
    """An out-of-focus lens: a disk-shaped blur."""
    return _convolve(image, _disk(level * _scale(image)))


def motion_blur(image, level, rng):
    """Camera or object motion during the exposure: a straight streak in a random direction."""
    return _convolve(image, _streak(level * _scale(image), rng.uniform(0.0, math.pi)))


def jpeg_compression(image, level, rng):
    """Heavy JPEG compression (blocking and ringing), encoded and decoded by Pillow."""
    buffer = io.BytesIO()
    _pil(image).save(buffer, format="JPEG", quality=int(level))
    return np.asarray(Image.open(buffer).convert("RGB"), dtype=np.float32)


def low_resolution(image, level, rng):
    """A small or distant object: downscaled (box filter), then upscaled back (bilinear)."""
    height, width = image.shape[:2]
    small = (max(1, round(width * level)), max(1, round(height * level)))
    reduced = _pil(image).resize(small, Image.Resampling.BOX)
    return np.asarray(reduced.resize((width, height), Image.Resampling.BILINEAR), np.float32)


def brightness(image, level, rng):
    """Overexposure: every channel raised by the same amount."""
    return image + level * 255.0


def contrast(image, level, rng):
    """Flat lighting or haze: each pixel pulled towards the image's mean."""
    mean = image.mean()
    return (image - mean) * level + mean


def colour_cast(image, level, rng):
    """A wrong white balance: channel gains shifted along a random hue direction (mean gain 1)."""
    angle = rng.uniform(0.0, 2 * math.pi)
    red_green = np.array([2.0, -1.0, -1.0]) / math.sqrt(6)
    green_blue = np.array([0.0, 1.0, -1.0]) / math.sqrt(2)
    gains = 1.0 + level * (math.cos(angle) * red_green + math.sin(angle) * green_blue)
    return image * gains


def occlusion(image, level, rng):
    """Part of the object hidden (a hand, other waste): a mid-grey square at a random place."""
    height, width = image.shape[:2]
    side = max(1, round(math.sqrt(level * height * width)))
    side_h, side_w = min(side, height), min(side, width)
    top = round(rng.uniform() * (height - side_h))  # a place drawn in [0, 1), then fitted in
    left = round(rng.uniform() * (width - side_w))
    hidden = image.copy()
    hidden[top : top + side_h, left : left + side_w] = 127.5
    return hidden


FUNCTIONS: dict[str, Callable[[np.ndarray, float, np.random.Generator], np.ndarray]] = {
    "gaussian_noise": gaussian_noise,
    "defocus_blur": defocus_blur,
    "motion_blur": motion_blur,
    "jpeg_compression": jpeg_compression,
    "low_resolution": low_resolution,
    "brightness": brightness,
    "contrast": contrast,
    "colour_cast": colour_cast,
    "occlusion": occlusion,
}


def image_key(text: str) -> int:
    """An image's seed from a stable text (its content hash): the same photo, the same noise."""
    return zlib.crc32(str(text).encode())


def check_corruption(name: str, severity: int) -> None:
    if name not in FUNCTIONS:
        raise ValueError(f"unknown corruption {name!r}; expected one of {', '.join(CORRUPTIONS)}")
    if not 1 <= severity <= MAX_SEVERITY:
        raise ValueError(f"severity must be 1..{MAX_SEVERITY}, got {severity}")


def corrupt(images: np.ndarray, name: str, severity: int, keys: Sequence[int]) -> np.ndarray:
    """`images` (n, h, w, 3), values 0..255, under corruption `name` at `severity` (1..5).

    Returns an array of the same shape and dtype, clipped to 0..255 (rounded for integer input).
    `keys` holds one seed per image (`image_key`); an image's result depends only on it, the image,
    the corruption and the severity (never on the other images of the batch).
    """
    check_corruption(name, severity)
    if len(keys) != len(images):
        raise ValueError(f"{len(keys)} keys for {len(images)} images")
    function, level = FUNCTIONS[name], SEVERITIES[name][severity - 1]
    out = np.empty_like(images)
    for i, (image, key) in enumerate(zip(images, keys)):
        rng = np.random.default_rng([int(key), zlib.crc32(name.encode())])
        result = np.clip(function(np.asarray(image, np.float32), level, rng), 0.0, 255.0)
        out[i] = np.rint(result) if np.issubdtype(images.dtype, np.integer) else result
    return out
