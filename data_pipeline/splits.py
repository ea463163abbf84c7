"""`split_dataset` and `SplitTable`: one leak-free, stratified, seeded train/val/test split.

Identical images (same `content_hash`) form one group that is assigned as a whole, so no picture
is trained on and then scored. Each class is split on its own, so a small class (TrashNet's
trash, 5 %) still lands in every split.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from data_pipeline.errors import DataError
from data_pipeline.leaks import LeakReport, check_split_leaks, conflict_warning, find_leaks
from data_pipeline.scan import ScannedDataset
from data_pipeline.sources import SPLITS

SPLIT_COLUMNS = ["path", "label", "split", "content_hash", "caption"]


@dataclass
class SplitTable:
    """Every image with its split; the one split all models of a run share.

    Args:
        class_names: sorted class names; label indices point into this list.
        table: columns `path,label,split,content_hash,caption`, in a fixed file order.
        leaks: identical-image groups and label conflicts found in the table.
        warnings: label conflicts and other problems that do not stop the run.
    """

    class_names: list[str]
    table: pd.DataFrame
    leaks: LeakReport = field(default_factory=LeakReport)
    warnings: list[str] = field(default_factory=list)

    def subset(self, split: str) -> pd.DataFrame:
        """The rows of one split in file order (predictions are matched to paths by this order)."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        return self.table[self.table["split"] == split].reset_index(drop=True)

    def counts(self) -> dict[str, dict[str, int]]:
        """Images per class in each split, zeros included."""
        return {
            s: {c: int((self.subset(s)["label"] == c).sum()) for c in self.class_names}
            for s in SPLITS
        }

    def label_indices(self, split: str) -> np.ndarray:
        """Class indices of one split's rows, in `subset(split)` order."""
        index = {name: i for i, name in enumerate(self.class_names)}
        return np.array([index[label] for label in self.subset(split)["label"]], dtype=np.int64)


def validate_ratios(ratios: Sequence[float]) -> tuple[float, float, float]:
    """Three finite non-negative ratios summing to 1 with a non-zero train ratio, or DataError
    naming --split."""
    values = tuple(float(r) for r in ratios)
    if (
        len(values) != 3
        or not all(math.isfinite(r) and r >= 0 for r in values)
        or not math.isclose(sum(values), 1.0, abs_tol=1e-6)
        or values[0] == 0
    ):
        raise DataError(
            "--split must be three non-negative train/val/test ratios summing to 1 with train "
            f"> 0, got {list(ratios)}"
        )
    return values  # type: ignore[return-value]


def split_targets(n: int, ratios: tuple[float, float, float]) -> list[int]:
    """Images per split for a class of `n`: largest-remainder rounding, then at least one per
    non-zero ratio."""
    raw = [n * r for r in ratios]
    targets = [math.floor(x) for x in raw]
    for i in sorted(range(3), key=lambda i: raw[i] - targets[i], reverse=True)[: n - sum(targets)]:
        targets[i] += 1
    for i in range(3):
        if ratios[i] > 0 and targets[i] == 0:
            targets[max(range(3), key=lambda j: targets[j])] -= 1
            targets[i] += 1
    return targets


def _class_location(scanned: ScannedDataset, label: str) -> str:
    if scanned.layout == "folders":
        return f"class folder {Path(scanned.source) / label}"
    return f"class {label!r} of {scanned.source}"


def assign_class(
    groups: pd.DataFrame, ratios: tuple[float, float, float], rng: np.random.Generator
) -> dict[str, str]:
    """content_hash -> split for one class's groups: shuffled, largest first, each to the split
    furthest below target."""
    order = groups.iloc[rng.permutation(len(groups))].sort_values(
        "size", ascending=False, kind="stable"
    )
    targets = split_targets(int(order["size"].sum()), ratios)
    filled = [0, 0, 0]
    open_splits = [i for i in range(3) if ratios[i] > 0]
    assignment = {}
    for digest, size in zip(order.index, order["size"]):
        chosen = max(open_splits, key=lambda i: (targets[i] - filled[i], -i))
        filled[chosen] += int(size)
        assignment[digest] = SPLITS[chosen]
    return assignment


def split_dataset(
    scanned: ScannedDataset, *, ratios: Sequence[float] = (0.7, 0.15, 0.15), seed: int = 0
) -> SplitTable:
    """Splits a scanned dataset, or takes the split it already has (pre-split folders, manifest
    `split`).

    A class with fewer distinct images than splits with a non-zero ratio cannot be stratified and is
    a DataError naming its folder.
    """
    values = validate_ratios(ratios)
    table = scanned.table[SPLIT_COLUMNS].copy()
    if not (table["split"] != "").all():
        groups = table.groupby("content_hash").agg(
            size=("path", "size"), label=("label", lambda s: s.value_counts().index[0])
        )
        needed = sum(r > 0 for r in values)
        assignment: dict[str, str] = {}
        for index, name in enumerate(scanned.class_names):
            own = groups[groups["label"] == name]
            if len(own) < needed:
                raise DataError(
                    f"{_class_location(scanned, name)} has {len(own)} distinct image(s), too few "
                    f"to put one in each of the {needed} splits of --split {list(values)}; add "
                    "images or set a ratio to 0"
                )
            assignment.update(assign_class(own, values, np.random.default_rng([seed, index])))
        table["split"] = table["content_hash"].map(assignment)
    check_split_leaks(table, scanned.source)
    return make_split_table(scanned.class_names, table, scanned.source)


def make_split_table(class_names: list[str], table: pd.DataFrame, where: str | Path) -> SplitTable:
    """A SplitTable with its leak report; label conflicts become its warning (already logged by the
    scan)."""
    report = find_leaks(table)
    warning = conflict_warning(report, where)
    return SplitTable(
        list(class_names), table.reset_index(drop=True), report, [warning] if warning else []
    )
