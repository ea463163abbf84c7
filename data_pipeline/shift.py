"""A deterministic shifted copy of a class-folder dataset: a second domain to develop against.

The suite's data is one domain (one studio, light and camera); a user's photos are another. To
develop and test shift remedies (`adapt`, robustness, BatchNorm adaptation) without a second public
set, `make_shifted_copy` writes a copy of any class-folder dataset in which every image gets its
own seeded mix of what changes between cameras and places:

* a random crop (a tighter or off-centre framing) rescaled to a random share of the original size;
* a background change: where a pixel is close to the image's border colour (the backdrop of a
  studio photo, whatever its colour), a seeded gradient with low-frequency texture is blended in,
  feathered; an image without a uniform border is barely touched;
* a colour cast (white balance) and a brightness/contrast change;
* one or two corruptions of `data_pipeline.corruptions` (noise, blur, JPEG, low resolution,
  occlusion, ...) at severities 1 to 3.

Nothing here knows a class or a data set: any classes, any images. Each image's random draws come
from a generator seeded by `seed` and the image's path inside the dataset, so a copy made twice is
byte-identical. `fraction` takes only a seeded held-out part of each class (whole groups of
byte-identical files, so no picture lands on both sides) and `rest` receives the other part,
unshifted: a source / target pair cut from one dataset that shares no photo.
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from data_pipeline.corruptions import CORRUPTIONS, FUNCTIONS, SEVERITIES, colour_cast
from data_pipeline.images import is_image_file

JPEG_QUALITY = 92
LOG_NAME = "shift_log.csv"  # beside the class folders: what was done to each image


@dataclass(frozen=True)
class ShiftSettings:
    """The ranges each image's draws come from (one source for every default)."""

    crop_area: tuple[float, float] = (0.55, 1.0)  # share of the image the crop keeps
    rescale: tuple[float, float] = (0.5, 1.0)  # output side / input side
    background_probability: float = 0.7
    background_tolerance: float = 48.0  # RGB distance to the border colour counted as backdrop
    cast_level: tuple[float, float] = (0.1, 0.35)
    brightness: tuple[float, float] = (-0.15, 0.15)  # added, as a share of 255
    contrast: tuple[float, float] = (0.7, 1.15)
    corruption_severity: tuple[int, int] = (1, 3)
    corruptions_per_image: tuple[int, int] = (1, 2)


def image_rng(seed: int, relative: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(relative.encode())])


def random_crop(image: np.ndarray, rng, settings: ShiftSettings) -> np.ndarray:
    """A crop keeping a random share of the area at a random place, its aspect jittered, then
    resized to a random share of the original side."""
    height, width = image.shape[:2]
    area = rng.uniform(*settings.crop_area)
    aspect = math.exp(rng.uniform(-0.2, 0.2))
    crop_h = min(height, max(1, round(height * math.sqrt(area) * aspect)))
    crop_w = min(width, max(1, round(width * math.sqrt(area) / aspect)))
    top = round(rng.uniform() * (height - crop_h))
    left = round(rng.uniform() * (width - crop_w))
    scale = rng.uniform(*settings.rescale)
    size = (max(8, round(width * scale)), max(8, round(height * scale)))
    crop = Image.fromarray(image[top : top + crop_h, left : left + crop_w].astype(np.uint8))
    return np.asarray(crop.resize(size, Image.Resampling.BILINEAR), np.float32)


def border_colour(image: np.ndarray) -> np.ndarray:
    """The median colour of the outer 6 % frame: the backdrop, where there is one."""
    height, width = image.shape[:2]
    band = max(1, round(0.06 * min(height, width)))
    frame = np.concatenate(
        [
            image[:band].reshape(-1, 3),
            image[-band:].reshape(-1, 3),
            image[:, :band].reshape(-1, 3),
            image[:, -band:].reshape(-1, 3),
        ]
    )
    return np.median(frame, axis=0)


def background_texture(height: int, width: int, rng, colours=None) -> np.ndarray:
    """A gradient between two colours (random unless `colours` gives the pair) at a random angle,
    with low-frequency blotches."""
    if colours is None:
        start, end = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    else:
        start, end = (np.asarray(c, np.float64) for c in colours)
    angle = rng.uniform(0, 2 * math.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    position = (xs / max(width - 1, 1)) * math.cos(angle) + (ys / max(height - 1, 1)) * math.sin(
        angle
    )
    position = (position - position.min()) / max(float(np.ptp(position)), 1e-6)
    gradient = start + position[..., None] * (end - start)
    coarse = rng.normal(0, 1, (6, 6, 3))
    blotches = Image.fromarray(((coarse - coarse.min()) / np.ptp(coarse) * 255).astype(np.uint8))
    blotches = np.asarray(blotches.resize((width, height), Image.Resampling.BICUBIC), np.float32)
    return np.clip(gradient + 0.35 * (blotches - 127.5), 0, 255)


def change_background(image: np.ndarray, rng, settings: ShiftSettings, colours=None) -> np.ndarray:
    """Blends a seeded texture (in `colours`, when given) where the image is near its border
    colour, feathered so the object's edge stays soft."""
    height, width = image.shape[:2]
    distance = np.linalg.norm(image - border_colour(image), axis=-1)
    mask = (distance < settings.background_tolerance).astype(np.uint8) * 255
    radius = max(1.0, 0.01 * min(height, width))
    mask = Image.fromarray(mask).filter(ImageFilter.GaussianBlur(radius))
    weight = np.asarray(mask, np.float32)[..., None] / 255.0 * rng.uniform(0.7, 1.0)
    return image * (1 - weight) + background_texture(height, width, rng, colours) * weight


def shift_image(image: np.ndarray, rng, settings: ShiftSettings) -> tuple[np.ndarray, list[str]]:
    """One image's shifted version (0..255 float) and the steps applied, in order."""
    steps = ["crop"]
    out = random_crop(image, rng, settings)
    if rng.uniform() < settings.background_probability:
        out = change_background(out, rng, settings)
        steps.append("background")
    level = rng.uniform(*settings.cast_level)
    out = colour_cast(out, level, rng)
    out = (out - out.mean()) * rng.uniform(*settings.contrast) + out.mean()
    out = out + 255.0 * rng.uniform(*settings.brightness)
    steps.append(f"cast{level:.2f}")
    low, high = settings.corruptions_per_image
    weakest, strongest = settings.corruption_severity
    names = [name for name in CORRUPTIONS if name not in ("colour_cast", "brightness", "contrast")]
    for name in rng.choice(names, size=int(rng.integers(low, high + 1)), replace=False):
        severity = int(
            rng.integers(settings.corruption_severity[0], settings.corruption_severity[1] + 1)
        )
        out = FUNCTIONS[name](np.clip(out, 0, 255), SEVERITIES[name][severity - 1], rng)
        steps.append(f"{name}{severity}")
    return np.clip(out, 0, 255), steps


def class_images(root: Path) -> dict[str, list[Path]]:
    """Class folder name -> its image files, sorted (hidden files and non-images skipped)."""
    return {
        folder.name: sorted(p for p in folder.rglob("*") if p.is_file() and is_image_file(p))
        for folder in sorted(root.iterdir())
        if folder.is_dir() and not folder.name.startswith(".")
    }


def held_out(paths: list[Path], fraction: float, seed: int, name: str) -> list[Path]:
    """A seeded `fraction` of a class's byte-identical groups (at least one), in file order."""
    groups: dict[str, list[Path]] = {}
    for path in paths:
        groups.setdefault(hashlib.sha1(path.read_bytes()).hexdigest(), []).append(path)
    keys = sorted(groups)
    count = min(len(keys), max(1, round(fraction * len(keys))))
    order = np.random.default_rng([int(seed), zlib.crc32(name.encode())]).permutation(len(keys))
    taken = {path for i in order[:count] for path in groups[keys[i]]}
    return [path for path in paths if path in taken]


def _link_or_copy(source: Path, destination: Path) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def make_shifted_copy(
    source: Path,
    out: Path,
    *,
    seed: int = 0,
    fraction: float = 1.0,
    rest: Path | None = None,
    settings: ShiftSettings | None = None,
    shifter=None,
) -> dict[str, int]:
    """Writes the shifted copy into `out` (and the untaken images, unshifted, into `rest`);
    returns class -> images written to `out`. `source` is only read.

    `shifter(image, rng) -> (shifted, steps)` shifts one image; by default `shift_image` with
    `settings` (the mixed style; `shift_camera.camera_shifter` gives the camera style)."""
    settings = settings or ShiftSettings()
    shifter = shifter or (lambda image, rng: shift_image(image, rng, settings))
    written: dict[str, int] = {}
    log_rows = []
    for name, paths in class_images(source).items():
        taken = held_out(paths, fraction, seed, name) if fraction < 1 else paths
        if rest is not None:
            chosen = set(taken)
            for path in paths:
                if path not in chosen:
                    _link_or_copy(path, rest / path.relative_to(source))
        names_used: set[str] = set()
        for path in taken:
            relative = path.relative_to(source).as_posix()
            with Image.open(path) as opened:
                image = np.asarray(opened.convert("RGB"), np.float32)
            shifted, steps = shifter(image, image_rng(seed, relative))
            stem = path.relative_to(source / name).with_suffix("").as_posix().replace("/", "_")
            target = (
                f"{stem}.jpg"
                if f"{stem}.jpg" not in names_used
                else f"{stem}_{path.suffix[1:]}.jpg"
            )
            names_used.add(target)
            (out / name).mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.rint(shifted).astype(np.uint8)).save(
                out / name / target, quality=JPEG_QUALITY
            )
            log_rows.append((relative, f"{name}/{target}", " ".join(steps)))
        written[name] = len(taken)
    with open(out / LOG_NAME, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["source", "shifted", "steps"])
        writer.writerows(log_rows)
    return written
