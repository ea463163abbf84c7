"""split_dataset: stratified, seeded, group-aware; given splits are kept; too-small classes are
rejected."""

import pytest
from dp_helpers import write_classes, write_image

from data_pipeline import DataError, scan_dataset, split_dataset
from data_pipeline.splits import split_targets


def test_default_split_is_stratified_and_puts_a_small_class_in_every_split(folders):
    split = split_dataset(scan_dataset(folders))
    assert split.counts() == {
        "train": {"cat": 7, "dog": 7, "eel": 2},
        "val": {"cat": 2, "dog": 2, "eel": 1},
        "test": {"cat": 1, "dog": 1, "eel": 1},
    }
    assert list(split.table.columns) == ["path", "label", "split", "content_hash", "caption"]


def test_split_is_seeded(folders):
    scanned = scan_dataset(folders)
    first, again, other = (
        split_dataset(scanned, seed=s).table["split"].tolist() for s in (0, 0, 1)
    )
    assert first == again and first != other


def test_ratios_are_configurable_and_zero_test_is_allowed(folders):
    split = split_dataset(scan_dataset(folders), ratios=(0.5, 0.5, 0.0))
    assert split.counts()["test"] == {"cat": 0, "dog": 0, "eel": 0}
    assert split.counts()["train"] == {"cat": 5, "dog": 5, "eel": 2}


@pytest.mark.parametrize("ratios", [(0.5, 0.5), (0.6, 0.6, -0.2), (0.0, 0.5, 0.5), (0.7, 0.2, 0.2)])
def test_bad_ratios_name_the_flag(folders, ratios):
    with pytest.raises(DataError, match="--split"):
        split_dataset(scan_dataset(folders), ratios=ratios)


def test_targets_round_by_largest_remainder_with_one_per_split():
    assert split_targets(137, (0.7, 0.15, 0.15)) == [96, 21, 20]
    assert split_targets(3, (0.7, 0.15, 0.15)) == [1, 1, 1]
    assert split_targets(4, (1.0, 0.0, 0.0)) == [4, 0, 0]


def test_class_too_small_names_its_folder(tmp_path):
    write_classes(tmp_path, {"cat": 5, "dog": 2})
    with pytest.raises(
        DataError,
        match=rf"class folder {tmp_path}/dog has 2 distinct image\(s\), too few .* 3 splits",
    ):
        split_dataset(scan_dataset(tmp_path))
    assert split_dataset(scan_dataset(tmp_path), ratios=(0.5, 0.5, 0.0)).counts()["val"]["dog"] == 1


def test_identical_images_stay_in_one_split_and_conflicts_are_reported(tmp_path):
    write_classes(tmp_path, {"cat": 12, "dog": 12})
    for i in range(4):  # copies of cat0..cat3 under both classes: four groups of three
        write_image(tmp_path / "cat" / f"copy{i}.png", i)
        write_image(tmp_path / "dog" / f"copy{i}.png", i)
    scanned = scan_dataset(tmp_path)
    for seed in range(5):
        split = split_dataset(scanned, seed=seed)
        assert (split.table.groupby("content_hash")["split"].nunique() == 1).all()
        assert len(split.leaks.duplicate_groups) == 4 and len(split.leaks.label_conflicts) == 4
    assert "4 group(s) of identical images (12 files)" in split.leaks.summary()
    assert any("cat/cat0.png = cat/copy0.png = dog/copy0.png" in w for w in split.warnings)


def test_presplit_layout_keeps_its_split(tmp_path):
    write_classes(tmp_path / "train", {"cat": 3, "dog": 3})
    write_classes(tmp_path / "val", {"cat": 1, "dog": 1}, start_seed=10)
    split = split_dataset(scan_dataset(tmp_path))
    assert split.counts() == {
        "train": {"cat": 3, "dog": 3},
        "val": {"cat": 1, "dog": 1},
        "test": {"cat": 0, "dog": 0},
    }


def test_subset_keeps_file_order_and_label_indices_match(folders):
    split = split_dataset(scan_dataset(folders))
    val = split.subset("val")
    assert list(val["path"]) == sorted(val["path"])
    assert [split.class_names[i] for i in split.label_indices("val")] == list(val["label"])
