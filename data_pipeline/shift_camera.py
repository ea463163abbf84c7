"""The `camera` style of the shifted copy: one consistent second domain, as another camera and
place give.

The default `mixed` style (`shift.shift_image`) draws a new mix for every photo: a colour cast of
its own, one or two corruptions of its own. That target is heterogeneous and heavily degraded; a
head trained on 504 of its own photos reaches only 0.588 on frozen Lite0 features
(docs/adaptation.md), so no remedy can show much on it. A deployment domain is usually consistent
instead: one camera's white balance, exposure and sensor defect, one bin or belt behind the
objects, while each photo has its own framing. `camera_look(seed)` draws that look once for the
whole copy; `camera_image` applies it to every image:

* its own crop (milder than `mixed`: most of the object stays in frame);
* the look's backdrop colours in place of a uniform studio backdrop (the texture's angle and
  blotches are the image's own);
* the look's colour cast, contrast and brightness, the same for every image;
* the look's sensor or lens defect, one of `data_pipeline.corruptions` at severity 1 or 2 (its
  random parts, such as the noise, drawn per image).

Nothing here knows a class or a dataset. Another `--seed` is another camera.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from data_pipeline.corruptions import FUNCTIONS, SEVERITIES, colour_cast
from data_pipeline.shift import ShiftSettings, change_background, random_crop

# The framing a camera style keeps: most of the object in view, a smaller photo.
CAMERA_SETTINGS = ShiftSettings(crop_area=(0.7, 1.0), rescale=(0.6, 1.0))
# A camera's own defects: sensor noise, lens blur, compression, a low-resolution sensor.
DEFECTS = ("gaussian_noise", "defocus_blur", "motion_blur", "jpeg_compression", "low_resolution")


@dataclass(frozen=True)
class CameraLook:
    """What every photo of the camera domain shares."""

    cast_level: float
    cast_seed: int  # seeds the cast's hue direction: the same for every image
    contrast: float
    brightness: float  # added, as a share of 255
    backdrop: tuple[tuple[float, ...], tuple[float, ...]]  # the backdrop gradient's two colours
    defect: str
    severity: int

    def steps(self) -> list[str]:
        return [
            f"cast{self.cast_level:.2f}",
            f"contrast{self.contrast:.2f}",
            f"brightness{self.brightness:+.2f}",
            f"{self.defect}{self.severity}",
        ]


def camera_look(seed: int) -> CameraLook:
    """The look of the camera domain `seed` (every draw from one generator of the seed)."""
    rng = np.random.default_rng([int(seed), zlib.crc32(b"camera look")])
    return CameraLook(
        cast_level=float(rng.uniform(0.15, 0.3)),
        cast_seed=int(rng.integers(2**31)),
        contrast=float(rng.uniform(0.75, 0.9)),
        brightness=float(rng.choice([-1, 1]) * rng.uniform(0.04, 0.1)),
        backdrop=(tuple(rng.uniform(0, 255, 3)), tuple(rng.uniform(0, 255, 3))),
        defect=str(rng.choice(DEFECTS)),
        severity=int(rng.integers(1, 3)),
    )


def camera_image(image: np.ndarray, rng, look: CameraLook) -> tuple[np.ndarray, list[str]]:
    """One image taken by the camera `look` describes (0..255 float), and the steps applied."""
    settings = CAMERA_SETTINGS
    steps = ["crop"]
    out = random_crop(image, rng, settings)
    if rng.uniform() < settings.background_probability:
        out = change_background(out, rng, settings, look.backdrop)
        steps.append("background")
    out = colour_cast(out, look.cast_level, np.random.default_rng(look.cast_seed))
    out = (out - out.mean()) * look.contrast + out.mean() + 255.0 * look.brightness
    defect = FUNCTIONS[look.defect]
    out = defect(np.clip(out, 0, 255), SEVERITIES[look.defect][look.severity - 1], rng)
    return np.clip(out, 0, 255), steps + look.steps()


def camera_shifter(seed: int):
    """`make_shifted_copy`'s `shifter` for the camera domain `seed`."""
    look = camera_look(seed)
    return lambda image, rng: camera_image(image, rng, look)
