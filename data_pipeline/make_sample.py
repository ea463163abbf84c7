"""Makes the embedded TrashNet sample: `python -m data_pipeline.make_sample --source DIR`.

A proportional, seeded subset of each class (at least `--min-per-class`), without any image that
has an identical copy in the source (TrashNet ships three across classes), downscaled to 128x96
JPEGs so the whole sample stays near 2 MB in git.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from data_pipeline.sample import sample_data_dir
from data_pipeline.scan import scan_dataset


def choose(paths: list[str], count: int, rng: np.random.Generator) -> list[str]:
    """`count` of `paths` (all when fewer), in file order so the result reads like the source."""
    picked = rng.choice(len(paths), size=min(count, len(paths)), replace=False)
    return [paths[i] for i in sorted(picked)]


def make_sample(
    source: Path,
    out: Path,
    *,
    fraction: float,
    min_per_class: int,
    seed: int,
    size: tuple[int, int],
    quality: int,
) -> dict[str, int]:
    """Writes `out/<class>/<name>.jpg` and returns the images per class; old JPEGs in those folders
    are replaced."""
    scanned = scan_dataset(source)
    duplicated = scanned.table["content_hash"].duplicated(keep=False)
    table = scanned.table[~duplicated]
    written = {}
    for index, name in enumerate(scanned.class_names):
        paths = sorted(table.loc[table["label"] == name, "path"])
        count = max(min_per_class, round(fraction * len(paths)))
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.jpg"):
            old.unlink()
        chosen = choose(paths, count, np.random.default_rng([seed, index]))
        for path in chosen:
            with Image.open(path) as img:
                small = img.convert("RGB").resize(size, Image.Resampling.LANCZOS)
            small.save(folder / f"{Path(path).stem}.jpg", "JPEG", quality=quality, optimize=True)
        written[name] = len(chosen)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--source", required=True, type=Path, help="the full TrashNet class-folder root"
    )
    parser.add_argument(
        "--out", type=Path, default=sample_data_dir(), help="defaults to the embedded sample folder"
    )
    parser.add_argument("--fraction", type=float, default=0.2, help="share of each class kept")
    parser.add_argument(
        "--min-per-class", type=int, default=30, help="floor, so the smallest class stays usable"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quality", type=int, default=85, help="JPEG quality")
    args = parser.parse_args(argv)
    written = make_sample(
        args.source,
        args.out,
        fraction=args.fraction,
        min_per_class=args.min_per_class,
        seed=args.seed,
        size=(128, 96),
        quality=args.quality,
    )
    print(
        ", ".join(f"{name} {n}" for name, n in written.items()),
        f"= {sum(written.values())} images in {args.out}",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
