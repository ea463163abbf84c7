"""The k-shot draw of `adapt`: nested, seeded, by content-hash group, one fixed test set."""

import pandas as pd
import pytest

from data_pipeline.errors import DataError
from data_pipeline.shots import NOT_DRAWN, draw_shots, draw_table, shots_split
from data_pipeline.splits import SplitTable


def base_split(per_class: int = 8) -> SplitTable:
    """A source split normally and a target all in test (as `merge_sources` makes it with the
    target `test_only`); target image 0 of each class has a copy (same hash) in the target."""
    rows = []
    for name in ("glass", "paper"):
        for i in range(6):
            split = ("train", "train", "train", "train", "val", "test")[i]
            rows.append([f"/s/{name}{i}.png", name, split, f"s-{name}{i}", "", "src"])
        for i in range(per_class):
            rows.append([f"/t/{name}{i}.png", name, "test", f"t-{name}{i}", "", "tgt"])
        rows.append([f"/t/{name}0_copy.png", name, "test", f"t-{name}0", "", "tgt"])
    columns = ["path", "label", "split", "content_hash", "caption", "source"]
    return SplitTable(["glass", "paper"], pd.DataFrame(rows, columns=columns))


def trained(split: SplitTable) -> set[str]:
    table = split.table
    return set(table.loc[(table["source"] == "tgt") & (table["split"] == "train"), "content_hash"])


def test_draw_is_nested_seeded_and_keeps_one_test_set():
    base = base_split()
    draw = draw_shots(base, "tgt", [0, 2, 4], seed=3)
    assert draw_shots(base, "tgt", [4, 2, 0], seed=3).ranks == draw.ranks  # seeded, order-free
    assert draw_shots(base, "tgt", [0, 2, 4], seed=4).ranks != draw.ranks
    # the cut into pool and test does not depend on the k asked for
    assert draw_shots(base, "tgt", [0, 1], seed=3).ranks == draw.ranks
    splits = {k: shots_split(base, draw, k) for k in (0, 2, 4)}
    assert trained(splits[0]) == set()
    assert trained(splits[2]) < trained(splits[4])
    assert len(trained(splits[2])) == 4 and len(trained(splits[4])) == 8  # k per class
    tests = []
    for split in splits.values():
        table = split.table
        target_test = table[(table["source"] == "tgt") & (table["split"] == "test")]
        tests.append(set(target_test["path"]))
        assert set(target_test["content_hash"]) == draw.test_hashes()
        # a group is never split: both files of a copied picture share one split (or both left out)
        assert table.groupby("content_hash")["split"].nunique().max() == 1
        # the source is untouched
        source = table[table["source"] == "src"].set_index("path")["split"]
        assert source.equals(base.table[base.table["source"] == "src"].set_index("path")["split"])
    assert tests[0] == tests[1] == tests[2]  # one fixed target test set for every k
    assert len(draw.test_hashes()) == 2 * 4  # half of each class's 8 groups, whatever the k
    frame = draw_table(base, draw)
    assert set(frame.loc[frame["rank"] == NOT_DRAWN, "role"]) == {"test"}
    assert sorted(set(frame["first_shots"]) - {""}) == [2, 4]


def test_too_many_shots_is_refused_naming_the_class():
    base = base_split(per_class=4)
    base.table = base.table[
        ~(
            (base.table["label"] == "paper")
            & base.table["path"].str.endswith(("3.png",))
            & (base.table["source"] == "tgt")
        )
    ]
    draw_shots(base, "tgt", [0, 1], seed=0)  # paper has 3 groups: 2 kept to test, 1 to label
    with pytest.raises(DataError, match=r"class 'paper' of target 'tgt' has 3 distinct.*up to 1"):
        draw_shots(base, "tgt", [0, 2], seed=0)


def test_target_weight_repeats_only_the_trained_target_photos():
    base = base_split()
    draw = draw_shots(base, "tgt", [0, 2], seed=0)
    once, thrice = shots_split(base, draw, 2), shots_split(base, draw, 2, repeat=3)
    target_train = once.table[(once.table["source"] == "tgt") & (once.table["split"] == "train")]
    assert len(target_train) >= 4  # 2 groups x 2 classes
    assert len(thrice.table) - len(once.table) == 2 * len(target_train)  # 2 more copies of each
    counts = thrice.table["path"].value_counts()
    assert set(counts[counts == 3].index) == set(target_train["path"])
    assert (counts[~counts.index.isin(target_train["path"])] == 1).all()
    assert shots_split(base, draw, 0, repeat=3).table.equals(shots_split(base, draw, 0).table)
