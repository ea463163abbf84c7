"""Leak checks: the same picture must never sit in two splits, under any file name.

Files are grouped by `content_hash` (decoded pixels), so a re-saved or renamed copy is caught too.
A group whose files carry different labels is a labelling problem in the dataset itself; it is
reported, and the group still stays within one split.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from data_pipeline.errors import DataError


def short_name(path: str) -> str:
    """`class/file.jpg`: enough to find a file in messages without the full absolute path."""
    p = Path(path)
    return f"{p.parent.name}/{p.name}"


@dataclass
class LeakReport:
    """Groups of identical images found in a dataset.

    Args:
        duplicate_groups: paths of each group of two or more images with identical decoded content.
        label_conflicts: those groups whose files carry more than one label.
    """

    duplicate_groups: list[list[str]] = field(default_factory=list)
    label_conflicts: list[list[str]] = field(default_factory=list)

    def summary(self) -> str:
        """One line for logs and the `plan` output."""
        if not self.duplicate_groups:
            return "no duplicate images"
        files = sum(len(g) for g in self.duplicate_groups)
        text = (
            f"{len(self.duplicate_groups)} group(s) of identical images ({files} files), "
            "each kept within one split"
        )
        if self.label_conflicts:
            text += (
                f"; {len(self.label_conflicts)} with conflicting labels: "
                f"{conflict_names(self.label_conflicts)}"
            )
        return text


def conflict_names(groups: list[list[str]]) -> str:
    return ", ".join(" = ".join(short_name(p) for p in group) for group in groups)


def find_leaks(table: pd.DataFrame) -> LeakReport:
    """Duplicate groups and label conflicts of a table with `path,label,content_hash` columns."""
    report = LeakReport()
    for _, group in table.groupby("content_hash", sort=True):
        if len(group) < 2:
            continue
        paths = sorted(group["path"])
        report.duplicate_groups.append(paths)
        if group["label"].nunique() > 1:
            report.label_conflicts.append(paths)
    return report


def conflict_warning(report: LeakReport, where: str | Path) -> str:
    """The warning text for label conflicts, naming the files, or "" when there are none."""
    if not report.label_conflicts:
        return ""
    return (
        f"{len(report.label_conflicts)} group(s) of identical images under {where} carry different "
        f"labels: {conflict_names(report.label_conflicts)}; each group is kept in one split; "
        "relabel or remove the wrong copy"
    )


def check_split_leaks(table: pd.DataFrame, where: str | Path) -> None:
    """Raises DataError when a file, or a group of identical images, sits in more than one split.

    Used for splits the user gave (pre-split folders, manifests, split files), which are taken as
    they are and therefore must be checked rather than repaired.
    """
    splits_per_path = table.groupby("path")["split"].nunique()
    repeated = sorted(splits_per_path[splits_per_path > 1].index)
    if repeated:
        raise DataError(
            f"{where} puts {len(repeated)} file(s) in more than one split "
            f"({', '.join(map(short_name, repeated[:10]))}); keep each file in one split"
        )
    straddling = [
        sorted(g["path"]) for _, g in table.groupby("content_hash") if g["split"].nunique() > 1
    ]
    if straddling:
        split_of = dict(zip(table["path"], table["split"]))
        described = ", ".join(
            " = ".join(f"{short_name(p)} ({split_of[p]})" for p in group) for group in straddling
        )
        raise DataError(
            f"{where} has {len(straddling)} group(s) of identical images in different splits: "
            f"{described}; move each group into one split or delete the copies"
        )
