"""`fold_splits`: stratified, group-aware K-fold cross-validation, one leak-free `SplitTable` per
fold.

The test folds partition the data: every image is scored in exactly one fold, so the K test scores
together cover the whole dataset once. Identical images (same `content_hash`) form one group that
moves as a whole, in every fold: a group in fold k's test part is in the training part of every
other fold, never split between the two. Each fold's validation images are carved from its own
training part (stratified and group-aware too), so validation never sees a test image of that fold.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd

from data_pipeline.errors import DataError
from data_pipeline.leaks import check_split_leaks, short_name
from data_pipeline.scan import ScannedDataset
from data_pipeline.splits import SPLIT_COLUMNS, SplitTable, make_split_table, split_targets


def even_targets(n: int, parts: int, start: int = 0) -> list[int]:
    """`n` images over `parts` equal shares: sizes differ by at most one, the larger shares from
    share `start` on.

    Passing each class the share after the previous class's last larger one spreads the remainders
    round-robin, so whole folds differ by at most one image too when no image has a duplicate.
    """
    return [n // parts + ((i - start) % parts < n % parts) for i in range(parts)]


def deal_groups(sizes: pd.Series, targets: list[int], rng: np.random.Generator) -> dict[str, int]:
    """Group -> bin: shuffled, largest first, each to the bin furthest below its target.

    Ties go to the bin holding fewer groups, then the lower index, so while a bin with a positive
    target is empty no other bin can take a group: each such bin gets at least one group whenever
    there are as many groups as bins (every test fold holds every class).
    """
    order = sizes.iloc[rng.permutation(len(sizes))].sort_values(ascending=False, kind="stable")
    open_bins = [i for i, target in enumerate(targets) if target > 0]
    filled, groups = [0] * len(targets), [0] * len(targets)
    assignment = {}
    for digest, size in order.items():
        chosen = max(open_bins, key=lambda i: (targets[i] - filled[i], -groups[i], -i))
        filled[chosen] += int(size)
        groups[chosen] += 1
        assignment[digest] = chosen
    return assignment


def minimum_groups(k: int) -> int:
    """Distinct images a class needs for K folds: one per test fold, and two left in every fold's
    training part."""
    return next(n for n in itertools.count(k) if n - math.ceil(n / k) >= 2)


def fold_splits(
    scanned: ScannedDataset, k: int, *, seed: int = 0, val_ratio: float = 0.15 / 0.85
) -> list[SplitTable]:
    """K leak-free splits of an unsplit dataset: fold `i` tests on the i-th part, trains and
    validates on the rest.

    Args:
        scanned: a class-folder root or a manifest without a `split` column (a given split cannot be
            re-partitioned: DataError naming --folds).
        k: number of folds, at least 2.
        seed: seeds both the fold assignment and each fold's validation carve-out.
        val_ratio: share of each fold's training part that becomes its validation images (0 < r
            < 1).
    """
    if not isinstance(k, int) or k < 2:
        raise DataError(f"--folds must be a whole number >= 2, got {k!r}")
    if not 0 < val_ratio < 1:
        raise DataError(
            "the validation share of each fold's training part must be between 0 and 1, got "
            f"{val_ratio}"
        )
    table = scanned.table[SPLIT_COLUMNS].copy()
    if (table["split"] != "").any():
        raise DataError(
            f"--folds {k} re-partitions the images, but {scanned.source} already has a "
            f"train/val/test split ({scanned.layout}); give a class-folder root or a manifest "
            "without a split column, or leave --folds out"
        )
    groups = table.groupby("content_hash").agg(
        size=("path", "size"), label=("label", lambda s: s.value_counts().index[0])
    )
    needed = minimum_groups(k)
    test_fold: dict[str, int] = {}
    start = 0
    for index, name in enumerate(scanned.class_names):
        own = groups[groups["label"] == name]
        if len(own) < needed:
            raise DataError(
                f"class {name!r} of {scanned.source} has {len(own)} distinct image(s), too few for "
                f"--folds {k} (it needs {needed}: one in each test fold, and one each in every "
                "fold's train and val part); use fewer folds or add images"
            )
        images = int(own["size"].sum())
        test_fold.update(
            deal_groups(
                own["size"], even_targets(images, k, start), np.random.default_rng([seed, index, k])
            )
        )
        start = (start + images) % k
    folds = []
    for fold in range(k):
        assignment = {digest: "test" for digest, i in test_fold.items() if i == fold}
        for index, name in enumerate(scanned.class_names):
            own = groups[groups["label"] == name]
            rest = own[[test_fold[digest] != fold for digest in own.index]]
            if len(rest) < 2:
                raise DataError(
                    f"class {name!r} of {scanned.source} leaves {len(rest)} distinct image(s) to "
                    f"train and validate on in fold {fold} of --folds {k}; use fewer folds or add "
                    "images"
                )
            targets = split_targets(int(rest["size"].sum()), (1.0 - val_ratio, val_ratio, 0.0))[:2]
            carved = deal_groups(
                rest["size"], targets, np.random.default_rng([seed, index, k, fold + 1])
            )
            assignment.update({digest: ("train", "val")[i] for digest, i in carved.items()})
        fold_table = table.assign(split=table["content_hash"].map(assignment))
        check_split_leaks(fold_table, f"fold {fold} of {scanned.source}")
        folds.append(make_split_table(scanned.class_names, fold_table, scanned.source))
    check_fold_partition([f.table for f in folds], scanned.source)
    return folds


def validation_share(ratios) -> float:
    """The validation share of a fold's training part that `--split train,val,test` implies: val
    / (train + val)."""
    train, val = float(ratios[0]), float(ratios[1])
    return val / (train + val)


def check_fold_partition(tables: list[pd.DataFrame], where) -> None:
    """Raises DataError unless the folds list the same images and their test parts partition them.

    Each image must be a test image in exactly one fold, and a group of identical images must be
    tested in one fold only (within a fold, `check_split_leaks` already keeps a group in one split).
    """
    paths = [set(t["path"]) for t in tables]
    if any(p != paths[0] for p in paths[1:]):
        differing = next(i for i, p in enumerate(paths) if p != paths[0])
        extra = sorted(paths[0] ^ paths[differing])
        raise DataError(
            f"{where}: fold 0 and fold {differing} list different images ({short_name(extra[0])} "
            f"and {len(extra) - 1} more); all folds must hold the same images, so make the folds "
            "again"
        )
    tested = pd.concat(
        [
            t.loc[t["split"] == "test", ["path", "content_hash"]].assign(fold=i)
            for i, t in enumerate(tables)
        ]
    )
    repeated = tested["path"][tested["path"].duplicated()]
    untested = sorted(paths[0] - set(tested["path"]))
    if len(repeated) or untested:
        name = short_name(repeated.iloc[0] if len(repeated) else untested[0])
        raise DataError(
            f"{where}: the test folds do not partition the images ({len(set(repeated))} tested in "
            f"several folds, {len(untested)} in none, e.g. {name}); make the folds again"
        )
    spread = tested.groupby("content_hash")["fold"].nunique()
    if (spread > 1).any():
        digest = spread[spread > 1].index[0]
        names = ", ".join(
            short_name(p) for p in tested.loc[tested["content_hash"] == digest, "path"]
        )
        raise DataError(
            f"{where}: identical images {names} are tested in different folds; make the folds again"
        )


def fold_summary(folds: list[SplitTable]) -> str:
    """One line for the dry run: images per fold's train/val/test."""
    sizes = [{s: sum(c.values()) for s, c in f.counts().items()} for f in folds]
    return "; ".join(f"fold {i}: {s['train']}/{s['val']}/{s['test']}" for i, s in enumerate(sizes))
