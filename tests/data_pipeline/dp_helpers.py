"""Tiny synthetic images written with PIL, shared by the data_pipeline tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

TRASHNET_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "trashnet"


def write_image(
    path: Path, seed: int, size: tuple[int, int] = (24, 16), fmt: str | None = None
) -> Path:
    """A random-noise RGB image (distinct per seed) of `size` (width, height); format from the
    suffix unless given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, fmt)
    return path


def write_classes(root: Path, counts: dict[str, int], start_seed: int = 0) -> Path:
    """`root/<class>/<class><i>.png` with `counts[class]` distinct images each."""
    seed = start_seed
    for name, count in counts.items():
        for i in range(count):
            write_image(root / name / f"{name}{i}.png", seed)
            seed += 1
    return root
