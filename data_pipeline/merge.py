"""`merge_sources`: several data sources as one leak-free split over one class list.

Each source is scanned as a dataset of its own (`scan_dataset`), its classes translated through its
label map, and the sources pooled. Identical images are then grouped by `content_hash` across all
sources, so a picture that two sources share lands in one split. Every other group is split with
the rows of the source it first appears in, class by class, as `split_dataset` splits one dataset:
each source keeps the train/val/test ratios on its own, so a small source is not swallowed by a big
one. Groups with a fixed split come first: a pre-split source's images keep theirs, and a
`test_only` source's images (and any copy of them elsewhere) all go to test.

The merged table gains a `source` column, which `splits.csv` keeps; the leaderboard reads it to
score each source's test images apart.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from data_pipeline.errors import DataError
from data_pipeline.leaks import check_split_leaks, short_name
from data_pipeline.scan import ScannedDataset, scan_dataset
from data_pipeline.source_specs import SourceSpec, read_sources
from data_pipeline.sources import SPLITS, check_training_classes
from data_pipeline.splits import (
    SPLIT_COLUMNS,
    SplitTable,
    assign_class,
    make_split_table,
    validate_ratios,
)

logger = logging.getLogger(__name__)

SOURCE_COLUMN = "source"


@dataclass
class MergedSources:
    """The merged split and what the scans of its sources left out.

    Args:
        split: every image of every source, its split and (column `source`) its source's name.
        skipped: `(path, reason)` of unreadable files left out under `--skip-corrupt`.
    """

    split: SplitTable
    skipped: list[tuple[str, str]]


def split_sources(
    data: str | list[str],
    *,
    ratios: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
    skip_corrupt: bool = False,
) -> MergedSources:
    """Reads the sources `--data` names, scans each and merges them (see the module docstring)."""
    specs = read_sources(data)
    scanned = [scan_dataset(spec.path, skip_corrupt=skip_corrupt, min_classes=1) for spec in specs]
    split = merge_sources(list(zip(specs, scanned)), ratios=ratios, seed=seed)
    return MergedSources(split, [item for s in scanned for item in s.skipped])


def _mapped_table(spec: SourceSpec, scanned: ScannedDataset) -> pd.DataFrame:
    """The source's rows with labels translated by its label map (null: rows dropped)."""
    classes = set(scanned.class_names)
    where = f"label_map {spec.map_file + ' ' if spec.map_file else ''}of source {spec.name!r}"
    lower = {name.lower(): name for name in sorted(classes, reverse=True)}
    mapping: dict[str, str | None] = {}
    for key, value in spec.label_map.items():  # keys match case-insensitively, as in `evaluate`
        name = key if key in classes else lower.get(key.lower())
        if name is None:
            raise DataError(
                f"{where}: {key!r} is not a class of {spec.path}; its classes are "
                f"{', '.join(sorted(classes))}"
            )
        mapping[name] = value
    table = scanned.table[SPLIT_COLUMNS].copy()
    table["label"] = [mapping.get(label, label) for label in table["label"]]
    table = table[table["label"].notna()]
    if table.empty:
        raise DataError(f"{where} leaves out every class; map at least one to a run class")
    table[SOURCE_COLUMN] = spec.name
    return table.reset_index(drop=True)


def _check_sources(specs: list[SourceSpec], tables: list[pd.DataFrame]) -> None:
    """Refusals that concern whole sources, each one line naming the source."""
    for spec, table in zip(specs, tables):
        if len(table) < 2:
            raise DataError(
                f"source {spec.name!r} ({spec.path}) has {len(table)} image(s); a source needs at "
                "least two (add images, or drop the source)"
            )
    if all(spec.test_only for spec in specs):
        raise DataError("every source is test_only; at least one source must be trained on")
    classes = [set(table["label"]) for table in tables]
    for i, spec in enumerate(specs):
        others = set().union(*(c for j, c in enumerate(classes) if j != i))
        if len(specs) > 1 and not classes[i] & others:
            hint = "fix its label_map" if spec.label_map else "give it a label_map"
            raise DataError(
                f"source {spec.name!r} ({', '.join(sorted(classes[i]))}) shares no class with the "
                f"other sources ({', '.join(sorted(others))}); {hint} translating its classes "
                "into theirs"
            )
    union = sorted(set().union(*classes))
    lower: dict[str, str] = {}
    for name in union:
        if lower.setdefault(name.lower(), name) != name:
            raise DataError(
                f"classes {lower[name.lower()]!r} and {name!r} of the sources differ only in case; "
                "map one onto the other with a label_map"
            )
    trained = set().union(*(c for spec, c in zip(specs, classes) if not spec.test_only))
    for spec, own in zip(specs, classes):
        empty = sorted(own - trained)
        if empty:
            how = "its label_map maps" if spec.label_map else "it has"
            raise DataError(
                f"source {spec.name!r}: {how} class(es) {', '.join(map(repr, empty))}, which no "
                "trained source has, so the class would have no training images; map them onto a "
                "trained class or to null"
            )


def _forced_splits(table: pd.DataFrame, test_only: set[str]) -> dict[str, str]:
    """content_hash -> split for groups whose split is fixed: a given split (pre-split source,
    manifest split) or test (a member from a test_only source). Two different fixed splits in one
    group are a DataError naming its files."""
    fixed = table["split"].where(table["split"] != "", None)
    fixed = fixed.where(~table[SOURCE_COLUMN].isin(test_only), "test")
    forced: dict[str, str] = {}
    for digest, group in table.assign(fixed=fixed).groupby("content_hash", sort=True):
        wanted = sorted(set(group["fixed"].dropna()))
        if len(wanted) > 1:
            described = ", ".join(
                f"{short_name(p)} ({s}, {f or 'to split'})"
                for p, s, f in zip(group["path"], group[SOURCE_COLUMN], group["fixed"])
            )
            raise DataError(
                f"identical images across sources would sit in different splits ({described}); "
                "remove the copies or make their given splits agree"
            )
        if wanted:
            forced[digest] = wanted[0]
    return forced


def merge_sources(
    sources: list[tuple[SourceSpec, ScannedDataset]],
    *,
    ratios: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
) -> SplitTable:
    """One SplitTable over every source (see the module docstring); the class list is the sorted
    union of the translated classes, so class weights and labels act on the union."""
    values = validate_ratios(ratios)
    specs = [spec for spec, _ in sources]
    tables = [_mapped_table(spec, scanned) for spec, scanned in sources]
    _check_sources(specs, tables)
    table = pd.concat(tables, ignore_index=True)
    repeated = table[table["path"].duplicated(keep=False)]
    if len(repeated):
        path = repeated["path"].iloc[0]
        names = ", ".join(repeated.loc[repeated["path"] == path, SOURCE_COLUMN])
        raise DataError(f"file {path} belongs to several sources ({names}); keep it in one")
    class_names = sorted(set(table["label"]))
    assignment = _forced_splits(table, {s.name for s in specs if s.test_only})
    free = table[~table["content_hash"].isin(assignment)]
    groups = free.groupby("content_hash", sort=True).agg(
        size=("path", "size"),
        label=("label", lambda s: s.value_counts().index[0]),
        source=(SOURCE_COLUMN, "first"),  # the source it first appears in: rows are in source order
    )
    needed = sum(r > 0 for r in values)
    for number, spec in enumerate(specs):
        own_source = groups[groups["source"] == spec.name]
        for index, name in enumerate(class_names):
            own = own_source[own_source["label"] == name]
            if len(own) == 0:
                continue
            if len(own) < needed:
                raise DataError(
                    f"class {name!r} of source {spec.name!r} ({spec.path}) has {len(own)} distinct "
                    f"image(s) left to split, too few to put one in each of the {needed} splits of "
                    f"--split {list(values)}; add images, map the class away, or set a ratio to 0"
                )
            rng = np.random.default_rng([seed, number, index])
            assignment.update(assign_class(own, values, rng))
    table["split"] = table["content_hash"].map(assignment)
    check_training_classes(table, "the merged sources")
    check_split_leaks(table, "the merged sources")
    split = make_split_table(class_names, table, "the merged sources")
    for warning in split.warnings:
        logger.warning(warning)
    return split


def source_names(table: pd.DataFrame) -> list[str]:
    """The sources of a split table in the order they were given; [] for a single-dataset split."""
    if SOURCE_COLUMN not in table.columns:
        return []
    return list(dict.fromkeys(table[SOURCE_COLUMN]))


def source_counts(table: pd.DataFrame) -> list[list]:
    """`[source, train, val, test]` image counts per source, in the order given; [] for a single
    dataset. The dry run prints them: a test_only source's empty train/val shows before training."""
    rows = []
    for name in source_names(table):
        own = table.loc[table[SOURCE_COLUMN] == name, "split"]
        rows.append([name, *[int((own == split).sum()) for split in SPLITS]])
    return rows
