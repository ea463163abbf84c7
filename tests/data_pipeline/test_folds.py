"""fold_splits: the test folds partition the data, no group of identical images straddles train and
test in any fold, validation is carved from each fold's training part, every fold is stratified."""

import pandas as pd
import pytest
from dp_helpers import write_classes, write_image

from data_pipeline import (
    DataError,
    check_fold_partition,
    fold_splits,
    scan_dataset,
    validation_share,
)
from data_pipeline.folds import even_targets, minimum_groups


@pytest.fixture
def with_copies(tmp_path):
    """cat 12, dog 12, eel 5 distinct images, plus four groups of identical copies (two across
    classes)."""
    write_classes(tmp_path, {"cat": 12, "dog": 12, "eel": 5})
    for i in range(4):
        write_image(tmp_path / "cat" / f"copy{i}.png", i)  # same pixels as cat<i>
        if i < 2:
            write_image(tmp_path / "dog" / f"copy{i}.png", i)  # and under another label
    return scan_dataset(tmp_path)


@pytest.mark.parametrize("k", [2, 3, 4])
def test_each_image_is_tested_in_exactly_one_fold(with_copies, k):
    folds = fold_splits(with_copies, k, seed=0)
    assert len(folds) == k
    every = set(with_copies.table["path"])
    tested = [set(f.subset("test")["path"]) for f in folds]
    assert all(set(f.table["path"]) == every for f in folds)
    assert set().union(*tested) == every and sum(map(len, tested)) == len(every)


@pytest.mark.parametrize("seed", range(4))
def test_no_group_of_identical_images_straddles_train_and_test_in_any_fold(with_copies, seed):
    folds = fold_splits(with_copies, 3, seed=seed)
    for fold in folds:
        assert (fold.table.groupby("content_hash")["split"].nunique() == 1).all()
    test_fold = pd.concat([f.subset("test").assign(fold=i) for i, f in enumerate(folds)])
    assert (test_fold.groupby("content_hash")["fold"].nunique() == 1).all()
    copies = with_copies.table[with_copies.table["path"].str.contains("copy")]
    assert len(copies) == 6 and folds[0].leaks.duplicate_groups  # the fixture does hold duplicates


def test_validation_is_carved_from_each_folds_training_part(with_copies):
    folds = fold_splits(with_copies, 3, seed=0, val_ratio=0.25)
    for fold in folds:
        counts = fold.counts()
        assert set(fold.table["split"]) == {"train", "val", "test"}
        trainable = sum(counts["train"].values()) + sum(counts["val"].values())
        assert abs(sum(counts["val"].values()) - 0.25 * trainable) <= 3
        assert all(
            counts[part][name] >= 1
            for part in ("train", "val", "test")
            for name in fold.class_names
        )


def test_even_shares_differ_by_at_most_one_and_rotate_their_remainder():
    assert (
        even_targets(10, 3) == [4, 3, 3]
        and even_targets(2, 3) == [1, 1, 0]
        and even_targets(2, 3, start=2) == [1, 0, 1]
    )


def test_test_folds_of_distinct_images_split_each_class_evenly(tmp_path):
    write_classes(tmp_path, {"cat": 10, "dog": 7, "eel": 4})
    folds = fold_splits(scan_dataset(tmp_path), 3, seed=1)
    for name, n in (("cat", 10), ("dog", 7), ("eel", 4)):
        sizes = sorted(f.counts()["test"][name] for f in folds)
        assert sum(sizes) == n and sizes[-1] - sizes[0] <= 1
    totals = [sum(f.counts()["test"].values()) for f in folds]
    assert sorted(totals) == [7, 7, 7]  # the classes' remainders go to different folds


def test_folds_are_seeded(with_copies):
    first, again, other = (
        [f.table["split"].tolist() for f in fold_splits(with_copies, 3, seed=s)] for s in (0, 0, 1)
    )
    assert first == again and first != other


def test_default_validation_share_follows_the_split_flag():
    assert validation_share([0.7, 0.15, 0.15]) == pytest.approx(0.15 / 0.85)
    assert validation_share([0.8, 0.2, 0.0]) == pytest.approx(0.2)


def test_a_presplit_dataset_is_refused_naming_the_flag(tmp_path):
    write_classes(tmp_path / "train", {"cat": 4, "dog": 4})
    write_classes(tmp_path / "val", {"cat": 2, "dog": 2}, start_seed=10)
    with pytest.raises(
        DataError,
        match="--folds 2 re-partitions the images, but .* already has a train/val/test split",
    ):
        fold_splits(scan_dataset(tmp_path), 2)


def test_a_class_too_small_for_the_folds_is_named(tmp_path):
    write_classes(tmp_path, {"cat": 9, "dog": 3})
    with pytest.raises(
        DataError, match=r"class 'dog' .* 3 distinct image\(s\), too few for --folds 2 \(it needs 4"
    ):
        fold_splits(
            scan_dataset(tmp_path), 2
        )  # a test fold of 2 would leave 1 to train and validate on
    assert len(fold_splits(scan_dataset(tmp_path), 3)) == 3
    assert [minimum_groups(k) for k in (2, 3, 5)] == [4, 3, 5]
    with pytest.raises(DataError, match="--folds must be a whole number >= 2"):
        fold_splits(scan_dataset(tmp_path), 1)


def _table(rows):
    return pd.DataFrame(rows, columns=["path", "content_hash", "split"])


def test_partition_check_catches_overlapping_missing_and_split_groups():
    good = [
        _table([("a", "1", "test"), ("b", "2", "train")]),
        _table([("a", "1", "train"), ("b", "2", "test")]),
    ]
    check_fold_partition(good, "here")
    twice = [good[0], _table([("a", "1", "test"), ("b", "2", "train")])]
    with pytest.raises(
        DataError, match=r"do not partition the images \(1 tested in several folds, 1 in none"
    ):
        check_fold_partition(twice, "here")
    with pytest.raises(DataError, match="list different images"):
        check_fold_partition([good[0], _table([("a", "1", "train"), ("c", "3", "test")])], "here")
    group = [
        _table([("a", "1", "test"), ("b", "1", "train")]),
        _table([("a", "1", "train"), ("b", "1", "test")]),
    ]
    with pytest.raises(DataError, match="identical images .* are tested in different folds"):
        check_fold_partition(group, "here")
