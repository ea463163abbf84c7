"""splits.csv round trip and the checks read_split_file runs."""

from pathlib import Path

import pandas as pd
import pytest

from data_pipeline import DataError, read_split_file, scan_dataset, split_dataset, write_split_file


@pytest.fixture
def split_csv(folders, tmp_path) -> Path:
    path = tmp_path / "run" / "splits.csv"
    write_split_file(split_dataset(scan_dataset(folders)), path)
    return path


def test_round_trip_gives_the_same_split(folders, split_csv):
    original = split_dataset(scan_dataset(folders))
    again = read_split_file(split_csv)
    assert again.class_names == original.class_names
    pd.testing.assert_frame_equal(again.table, original.table)
    assert list(pd.read_csv(split_csv).columns) == [
        "path",
        "label",
        "split",
        "content_hash",
        "caption",
    ]


def test_relative_paths_are_read_against_the_files_folder(folders, split_csv):
    table = pd.read_csv(split_csv)
    table["path"] = [str(Path(p).relative_to(split_csv.parent.parent)) for p in table["path"]]
    moved = split_csv.parent.parent / "splits.csv"
    table.to_csv(moved, index=False)
    assert (
        read_split_file(moved).table["path"].tolist()
        == read_split_file(split_csv).table["path"].tolist()
    )


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"split file .*nope.csv does not exist"):
        read_split_file(tmp_path / "nope.csv")


def test_missing_column_is_named(split_csv):
    pd.read_csv(split_csv).drop(columns="content_hash").to_csv(split_csv, index=False)
    with pytest.raises(DataError, match=r"has no 'content_hash' column"):
        read_split_file(split_csv)


def test_listed_image_that_is_gone(split_csv):
    gone = pd.read_csv(split_csv)["path"][0]
    Path(gone).unlink()
    with pytest.raises(DataError, match=rf"lists 1 file\(s\) that do not exist \({gone}\)"):
        read_split_file(split_csv)


def test_path_in_two_splits_is_a_leak(split_csv):
    table = pd.read_csv(split_csv)
    extra = table.iloc[[0]].assign(split="test" if table["split"][0] != "test" else "val")
    pd.concat([table, extra]).to_csv(split_csv, index=False)
    with pytest.raises(DataError, match=r"puts 1 file\(s\) in more than one split"):
        read_split_file(split_csv)


def test_identical_images_across_splits_are_a_leak(split_csv):
    table = pd.read_csv(split_csv)
    train, val = table.index[table["split"] == "train"][0], table.index[table["split"] == "val"][0]
    table.loc[val, "content_hash"] = table.loc[train, "content_hash"]
    table.to_csv(split_csv, index=False)
    with pytest.raises(
        DataError, match=r"identical images in different splits: .*\(train\) = .*\(val\)"
    ):
        read_split_file(split_csv)


def test_a_class_without_train_rows_is_named(split_csv):
    table = pd.read_csv(split_csv)
    table.loc[(table["label"] == "eel") & (table["split"] == "train"), "split"] = "test"
    table.to_csv(split_csv, index=False)
    with pytest.raises(
        DataError, match=r"class 'eel' has no train images \(only val/test\) under .*splits.csv"
    ):
        read_split_file(split_csv)


def test_a_split_file_that_is_not_utf8_says_so(split_csv):
    split_csv.write_bytes(split_csv.read_bytes() + b"x.png,caf\xe9,train,0,\n")
    with pytest.raises(
        DataError,
        match=r"split file .*splits.csv is not UTF-8 text \(byte 0xe9 on line 26\); "
        r"re-save it as UTF-8",
    ):
        read_split_file(split_csv)
