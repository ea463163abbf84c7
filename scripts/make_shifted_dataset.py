#!/usr/bin/env python
"""Writes a deterministic shifted copy of a class-folder dataset (a second domain to develop on).

    python scripts/make_shifted_dataset.py SRC OUT [--seed N] [--fraction F] [--rest DIR]
        [--style mixed|camera]

With the default `--style mixed`, every image of SRC's class folders gets its own seeded mix of
a random crop and rescale, a background change (a seeded gradient/texture blended where the image
is near its border colour), a colour cast with a brightness/contrast change, and one or two of the
suite's corruptions (`data_pipeline/corruptions.py`) at severities 1-3; it is written as JPEG into
OUT/<class>/, with OUT/shift_log.csv naming what was done to each (`data_pipeline/shift.py`).
`--style camera` draws one look for the whole copy instead (a cast, exposure, backdrop and one
sensor or lens defect), as another camera and place give, and varies only each image's framing
(`data_pipeline/shift_camera.py`). The same SRC, seed, fraction and style give byte-identical
files.

A source / target pair from ONE dataset must share no photo, or the target measures memory, not
shift: `--fraction F` shifts only a seeded share F of each class (whole groups of byte-identical
files), and `--rest DIR` writes the other images, unshifted (hard links where possible), as the
source. SRC is never written to; OUT and DIR must not exist yet (or be empty) and must lie outside
SRC. Example, TrashNet against a shifted third of itself:

    python scripts/make_shifted_dataset.py ../shared/data/trashnet /tmp/shifted --fraction 0.3 \\
        --rest /tmp/source
    python run_benchmark.py adapt --data /tmp/source --target /tmp/shifted --output /tmp/curve
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_pipeline.shift import class_images, make_shifted_copy  # noqa: E402
from data_pipeline.shift_camera import camera_shifter  # noqa: E402


def refuse(message: str) -> None:
    print(f"make_shifted_dataset: {message}", file=sys.stderr)
    raise SystemExit(2)


def check_folder(flag: str, folder: Path, source: Path) -> None:
    """OUT or --rest: outside SRC (SRC is only read) and new or empty."""
    resolved = folder.resolve()
    if resolved == source or source in resolved.parents:
        refuse(f"{flag} {folder} lies inside SRC {source}; SRC is never written to")
    if resolved in source.parents:
        refuse(f"{flag} {folder} contains SRC {source}; pick a folder beside it")
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        refuse(f"{flag} {folder} already exists and is not an empty folder")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="make_shifted_dataset.py",
        description=__doc__.split("\n\n")[1],
        epilog="A held-out part: --fraction F shifts a seeded share F of each class; --rest DIR "
        "receives the other images unshifted, so a source (DIR) / target (OUT) pair made from "
        "one dataset shares no photo.",
    )
    parser.add_argument("src", type=Path, help="class-folder dataset to copy (only read)")
    parser.add_argument("out", type=Path, help="new folder for the shifted copy")
    parser.add_argument("--seed", type=int, default=0, help="seed of every draw (default 0)")
    parser.add_argument(
        "--fraction",
        type=float,
        default=1.0,
        help="share of each class's images to shift (seeded; default 1: all)",
    )
    parser.add_argument(
        "--rest", type=Path, help="also write the images not shifted here, unshifted: the source"
    )
    parser.add_argument(
        "--style",
        choices=("mixed", "camera"),
        default="mixed",
        help="mixed (default): every image its own mix of framing, backdrop, cast and one or two "
        "corruptions; camera: one look drawn for the whole copy (cast, exposure, backdrop, one "
        "sensor or lens defect), as another camera and place give, each image its own framing",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if not args.src.is_dir():
        refuse(f"SRC {args.src} is not a folder of class folders")
    source = args.src.resolve()
    if not 0 < args.fraction <= 1:
        refuse(f"--fraction {args.fraction:g} must be above 0 and at most 1")
    if args.seed < 0:
        refuse(f"--seed {args.seed} must be >= 0")
    if args.rest is not None and args.fraction >= 1:
        refuse("--rest needs --fraction below 1 (with all images shifted nothing is left)")
    classes = class_images(source)
    if not any(classes.values()):
        refuse(f"SRC {args.src} has no class folder with images")
    check_folder("OUT", args.out, source)
    if args.rest is not None:
        check_folder("--rest", args.rest, source)
        if args.rest.resolve() == args.out.resolve():
            refuse("--rest and OUT are the same folder")
    args.out.mkdir(parents=True, exist_ok=True)
    written = make_shifted_copy(
        source,
        args.out,
        seed=args.seed,
        fraction=args.fraction,
        rest=args.rest,
        shifter=camera_shifter(args.seed) if args.style == "camera" else None,
    )
    total = sum(written.values())
    print(f"{total} shifted images in {len(written)} classes -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
