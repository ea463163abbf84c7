"""`scan_dataset`: list a dataset, decode every image once, and check it before anything trains on
it."""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from data_pipeline.captions import caption_from_filename
from data_pipeline.errors import DataError, record_warning
from data_pipeline.images import REFUSED_FOR_SIZE, inspect_image
from data_pipeline.leaks import check_split_leaks, conflict_warning, find_leaks
from data_pipeline.sources import Listing, check_training_classes, list_source

logger = logging.getLogger(__name__)

COLUMNS = ["path", "label", "split", "caption", "content_hash"]


@dataclass
class ScannedDataset:
    """A dataset whose every image was decoded and hashed.

    Args:
        source: the class-folder root, pre-split root or CSV manifest given.
        layout: "folders", "presplit" or "manifest".
        class_names: sorted class names; the index of a name is its label index everywhere.
        table: columns `path` (absolute str), `label`, `split` ("" when not pre-split), `caption`,
            `content_hash`.
        skipped: `(path, reason)` of unreadable files left out because `skip_corrupt` was set.
        warnings: problems that do not stop the run (also logged).
    """

    source: Path
    layout: str
    class_names: list[str]
    table: pd.DataFrame
    skipped: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _inspect_all(paths: list[str]) -> list[tuple[str, str]]:
    """`inspect_image` over all files; threads, because PIL releases the GIL while decoding."""
    with ThreadPoolExecutor(max_workers=min(8, 2 * (os.cpu_count() or 1))) as pool:
        return list(pool.map(inspect_image, paths))


def _relative(path: str, base: Path) -> str:
    try:
        return str(Path(path).relative_to(base))
    except ValueError:
        return path


def scan_dataset(
    source: str | Path, *, skip_corrupt: bool = False, min_classes: int = 2
) -> ScannedDataset:
    """Lists, decodes and checks a dataset in any of the three layouts.

    Training needs `min_classes` = 2; scoring a trained model (`evaluate`) takes one class, a user
    checking one bin of photos.

    Unreadable files are all found in one pass and reported in one DataError (or, with
    `skip_corrupt`, left out and listed in `skipped`). Label conflicts among identical images and
    captions that spell out the label become warnings; identical images across given splits are
    errors.
    """
    source = Path(source).expanduser()
    listing = list_source(source)
    warnings = list(listing.warnings)
    base = (source.parent if source.is_file() else source).resolve()
    table = listing.table.copy()
    results = _inspect_all(list(table["path"]))
    table["content_hash"] = [digest for digest, _ in results]
    skipped = [(path, reason) for path, (_, reason) in zip(table["path"], results) if reason]
    too_large = [(path, reason) for path, reason in skipped if reason.startswith(REFUSED_FOR_SIZE)]
    if skipped and not skip_corrupt:
        listed = ", ".join(f"{_relative(p, base)} ({reason})" for p, reason in skipped)
        what = "unreadable"
        if too_large:
            what = "too large" if len(too_large) == len(skipped) else "unreadable or too large"
        raise DataError(
            f"{len(skipped)} {what} image(s) under {base}: {listed}; fix or remove "
            "them, or pass --skip-corrupt"
        )
    if too_large:  # named in one line: not a broken file, and the user may want to shrink them
        named = ", ".join(
            f"{_relative(p, base)} ({reason.split(': ', 1)[-1]})" for p, reason in too_large[:5]
        )
        more = f" and {len(too_large) - 5} more" if len(too_large) > 5 else ""
        _warn(
            warnings,
            f"skipped {len(too_large)} image(s) refused for size under {base}: {named}{more}",
        )
    if len(skipped) > len(too_large):
        _warn(
            warnings,
            f"skipped {len(skipped) - len(too_large)} unreadable image(s) under {base} "
            "(see the skipped list)",
        )
    if skipped:
        table = table[table["content_hash"] != ""]
    table["caption"] = [
        c or caption_from_filename(p) for c, p in zip(table["caption"], table["path"])
    ]
    table = table[COLUMNS].reset_index(drop=True)
    class_names = _class_names(table, listing, base, warnings, min_classes)
    report = find_leaks(table)
    if report.label_conflicts:
        _warn(warnings, conflict_warning(report, base))
    if (table["split"] != "").all():
        check_training_classes(table, source)
        check_split_leaks(table, source)
    return ScannedDataset(source, listing.layout, class_names, table, skipped, warnings)


def _class_names(
    table: pd.DataFrame, listing: Listing, base: Path, warnings: list[str], min_classes: int = 2
) -> list[str]:
    """Sorted class names; a class whose only images were skipped is dropped, and fewer than
    `min_classes` (at least one) is an error."""
    names = sorted(table["label"].unique())
    for lost in sorted(set(listing.table["label"]) - set(names)):
        _warn(warnings, f"class {lost!r} under {base} has no readable images left; it is left out")
    if len(names) < max(1, min_classes):
        what = "labels" if listing.layout == "manifest" else "class folders"
        found = f"only one class ({names[0]!r})" if names else "no readable images"
        raise DataError(f"{found} under {base}; a classifier needs at least two {what} with images")
    return names


def _warn(warnings: list[str], message: str) -> None:
    record_warning(warnings, message, logger)
