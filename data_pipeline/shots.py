"""The k-shot draw of the adaptation curve: which target photos are labelled for training at each k.

`adapt` (docs/adaptation.md) asks how many of a user's own photos must be labelled before a model
trained on a public source works on them. Each point of that curve trains on the source plus k
target photos per class. For the points to be comparable:

* the draw is made once, seeded, and nested: class by class the target's images are put in one
  seeded order, and k takes the first k, so the 10-shot photos include the 5-shot ones (a higher k
  only ever adds labels, as it would for a user labelling more);
* it draws content-hash groups, not files: copies of one picture are trained on together or
  tested together, never split across train and test;
* each class's seeded order is cut once: its last `TARGET_TEST_SHARE` of groups (at least one) is
  the fixed target test set, the same for every k, and the rest is the target's training pool, from
  which k takes its first k (pool photos not drawn at this k are left out of this k's run), so the
  curve compares like with like. The whole pool is also what the in-domain reference trains on
  (the goal's "a model trained on the target's whole training split"); the cut does not depend on
  the k asked for, so adding a larger k never shrinks the test set.

The input is the merge of the sources with the target as a `test_only` source (`merge_sources`),
so the source keeps its usual leak-free split and every target image (and any copy of it in the
source) starts in test; `shots_split` moves this k's draw to train.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from data_pipeline.errors import DataError
from data_pipeline.merge import SOURCE_COLUMN
from data_pipeline.splits import SplitTable, make_split_table

NOT_DRAWN = -1  # the rank of a group in the fixed target test set
# The share of each target class (content-hash groups) held out as the fixed test set: half, so a
# user's folder of 100 photos a class affords the default largest k (50) and still tests on 50.
TARGET_TEST_SHARE = 0.5


@dataclass
class ShotDraw:
    """The nested draw over the target's content-hash groups.

    Args:
        target: the target source's name (its `source` column value).
        shots: the k values asked for, sorted ascending.
        ranks: content_hash -> the group's place in its class's training pool (0 first), or
            NOT_DRAWN for the fixed test set; a group is trained on at k when its rank < k.
        labels: content_hash -> the group's (translated) class.
    """

    target: str
    shots: list[int]
    ranks: dict[str, int]
    labels: dict[str, str]

    def test_hashes(self) -> set[str]:
        """The fixed target test set, shared by every k."""
        return {h for h, rank in self.ranks.items() if rank == NOT_DRAWN}


def draw_shots(
    base: SplitTable,
    target: str,
    shots: list[int],
    *,
    seed: int = 0,
    test_share: float = TARGET_TEST_SHARE,
) -> ShotDraw:
    """Cuts each target class's groups, in an order seeded by `seed` and the class's index, into a
    training pool and the fixed test set (its last `test_share`, at least one group); k draws the
    pool's first k, nested.

    Raises DataError naming the class when its pool is smaller than max(shots).
    """
    shots = sorted(set(shots))
    largest = shots[-1]
    rows = base.table[base.table[SOURCE_COLUMN] == target]
    majority = rows.groupby("content_hash", sort=True)["label"]
    groups = majority.agg(lambda s: s.value_counts().index[0])
    ranks: dict[str, int] = {}
    for index, name in enumerate(base.class_names):
        own = list(groups[groups == name].index)
        if not own:
            continue
        pool = len(own) - max(1, math.ceil(len(own) * test_share))
        if pool < largest:
            raise DataError(
                f"--shots {largest}: class {name!r} of target {target!r} has {len(own)} distinct "
                f"image(s); {len(own) - pool} are kept for its test set, leaving {pool} to label; "
                f"use --shots up to {pool}, or add photos of {name!r}"
            )
        order = np.random.default_rng([seed, index]).permutation(len(own))
        for place, position in enumerate(order):
            ranks[own[position]] = place if place < pool else NOT_DRAWN
    return ShotDraw(target, shots, ranks, dict(groups.items()))


def shots_split(base: SplitTable, draw: ShotDraw, k: int, *, repeat: int = 1) -> SplitTable:
    """The split of the k-shot run: the base split with the first k groups of each target class in
    train (with any copy of them elsewhere), groups drawn only for a larger k left out, and the
    fixed target test set in test.

    `repeat` > 1 lists each trained target image that many times in train (oversampling): a few
    labelled photos otherwise weigh next to nothing beside thousands of source ones. Each copy is
    augmented on its own, and class weights count the copies, as they would count extra photos.
    """
    rank = base.table["content_hash"].map(draw.ranks)
    drawn = rank.notna() & (rank != NOT_DRAWN)
    table = base.table.copy()
    table.loc[drawn & (rank < k), "split"] = "train"
    table = table[~(drawn & (rank >= k))]
    trained = table[(table[SOURCE_COLUMN] == draw.target) & (table["split"] == "train")]
    table = pd.concat([table, *[trained] * (repeat - 1)], ignore_index=True)
    return make_split_table(base.class_names, table, f"the {k}-shot split")


def draw_table(base: SplitTable, draw: ShotDraw) -> pd.DataFrame:
    """Every target image with its class, group, rank and the smallest k that trains on it ("" for
    the fixed test set): `adapt` writes it as draw.csv so the draw can be inspected."""
    rows = base.table[base.table[SOURCE_COLUMN] == draw.target]
    rank = rows["content_hash"].map(draw.ranks).astype(int)
    first_k = [next((k for k in draw.shots if r < k), "") if r != NOT_DRAWN else "" for r in rank]
    return pd.DataFrame(
        {
            "path": rows["path"].to_numpy(),
            "label": rows["label"].to_numpy(),
            "content_hash": rows["content_hash"].to_numpy(),
            "rank": rank.to_numpy(),
            "first_shots": first_k,
            "role": np.where(rank == NOT_DRAWN, "test", "drawn"),
        }
    )
