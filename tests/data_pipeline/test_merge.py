"""Merging several data sources (`data_pipeline.merge`, `data_pipeline.source_specs`)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from dp_helpers import write_classes, write_image

from data_pipeline import (
    DataError,
    damped_class_weights,
    read_sources,
    read_split_file,
    split_dataset,
    split_sources,
    write_split_file,
)
from data_pipeline.scan import scan_dataset


def _two_sources(tmp_path: Path) -> tuple[Path, Path]:
    """Source `a` (cat 8, dog 8) and source `b` (cat 6, dog 6, eel 6), all images distinct."""
    a = write_classes(tmp_path / "a", {"cat": 8, "dog": 8})
    b = write_classes(tmp_path / "b", {"cat": 6, "dog": 6, "eel": 6}, start_seed=1000)
    return a, b


def _yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sources.yaml"
    path.write_text(text)
    return path


def test_an_identical_image_in_two_sources_lands_in_one_split(tmp_path):
    a, b = _two_sources(tmp_path)
    for i in range(4):  # four of a's cats, copied into b under other names
        shutil.copy(a / "cat" / f"cat{i}.png", b / "cat" / f"copy{i}.png")
    table = split_sources([str(a), str(b)], seed=3).split.table
    for i in range(4):
        pair = table[table["path"].str.endswith((f"a/cat/cat{i}.png", f"b/cat/copy{i}.png"))]
        assert len(pair) == 2 and pair["split"].nunique() == 1, pair
    assert table.groupby("content_hash")["split"].nunique().max() == 1
    assert set(table["source"]) == {"a", "b"}


def test_each_source_is_split_on_its_own_and_the_class_list_is_the_union(tmp_path):
    a, b = _two_sources(tmp_path)
    merged = split_sources([str(a), str(b)]).split
    assert merged.class_names == ["cat", "dog", "eel"]
    for name in ("a", "b"):
        own = merged.table[merged.table["source"] == name]
        assert set(own["split"]) == {"train", "val", "test"}, name


def test_class_weights_act_on_the_union(tmp_path):
    a, b = _two_sources(tmp_path)
    merged = split_sources([str(a), str(b)]).split
    counts = np.bincount(merged.label_indices("train"), minlength=len(merged.class_names))
    alone = split_dataset(scan_dataset(a)).counts()["train"]
    # cat and dog train images come from both sources; eel only from b, so it weighs most
    assert counts[0] > alone["cat"] and counts[1] > alone["dog"] and 0 < counts[2] < counts[0]
    weights = damped_class_weights(counts, 1.0)
    assert len(weights) == 3 and weights[2] > weights[0]
    assert np.isclose((weights * counts).sum(), counts.sum())


def test_a_test_only_source_gives_no_train_or_val_image(tmp_path):
    a, b = _two_sources(tmp_path)
    shutil.copy(b / "dog" / "dog0.png", a / "dog" / "also_b.png")  # a copy follows it into test
    shutil.rmtree(b / "eel")
    sources = _yaml(tmp_path, f"- path: {a}\n- path: {b}\n  name: other\n  test_only: true\n")
    table = split_sources(str(sources)).split.table
    other = table[table["source"] == "other"]
    assert len(other) == 12 and set(other["split"]) == {"test"}
    assert table.loc[table["path"].str.endswith("also_b.png"), "split"].item() == "test"
    assert set(table.loc[table["source"] == "a", "split"]) == {"train", "val", "test"}


def test_a_label_map_translates_a_source_into_the_union(tmp_path):
    a = write_classes(tmp_path / "a", {"cat": 6, "dog": 6})
    b = write_classes(tmp_path / "b", {"Katze": 5, "Hund": 5, "Fisch": 3}, start_seed=500)
    (tmp_path / "map.yaml").write_text("katze: cat\nHund: [dog]\nFisch: null\n")
    sources = _yaml(tmp_path, f"- {{path: {a}}}\n- {{path: {b}, label_map: map.yaml}}\n")
    merged = split_sources(str(sources)).split
    assert merged.class_names == ["cat", "dog"]
    assert (merged.table["source"] == "b").sum() == 10


def test_the_source_column_survives_the_split_file_and_a_single_dataset_has_none(tmp_path):
    a, b = _two_sources(tmp_path)
    merged = split_sources([str(a), str(b)]).split
    write_split_file(merged, tmp_path / "splits.csv")
    assert read_split_file(tmp_path / "splits.csv").table["source"].tolist() == (
        merged.table["source"].tolist()
    )
    write_split_file(split_dataset(scan_dataset(a)), tmp_path / "one.csv")
    header = (tmp_path / "one.csv").read_text().splitlines()[0]
    assert header == "path,label,split,content_hash,caption"


def test_repeated_data_names_each_source_after_its_folder(tmp_path):
    a, b = _two_sources(tmp_path)
    assert [s.name for s in read_sources([str(a), str(b)])] == ["a", "b"]


@pytest.mark.parametrize(
    "case, expected",
    [
        ("same_name", "two sources are named 'data'"),
        ("disjoint", "shares no class with the other sources"),
        ("one_image", "has 1 image(s)"),
        ("empty_class", "which no trained source has"),
        ("missing_path", "does not exist"),
        ("unknown_key", "unknown key(s) 'weight'"),
        ("map_unknown_class", "'fox' is not a class of"),
        ("map_several", "'cat' maps to ['cat', 'dog']"),
    ],
)
def test_bad_sources_are_one_line_errors_naming_them(tmp_path, case, expected):
    a = write_classes(tmp_path / "a" / "data", {"cat": 6, "dog": 6})
    b = tmp_path / "b" / ("data" if case == "same_name" else "other")
    if case == "same_name":
        write_classes(b, {"cat": 6, "dog": 6}, start_seed=100)
        data = [str(a), str(b)]
    elif case == "disjoint":
        write_classes(b, {"fox": 6, "owl": 6}, start_seed=100)
        data = [str(a), str(b)]
    elif case == "one_image":
        write_image(b / "cat" / "only.png", 100)
        data = str(_yaml(tmp_path, f"- {{path: {a}}}\n- {{path: {b}, name: tiny}}\n"))
    elif case == "empty_class":
        write_classes(b, {"cat": 3, "fox": 3}, start_seed=100)
        data = str(_yaml(tmp_path, f"- {{path: {a}}}\n- {{path: {b}, name: b, test_only: true}}\n"))
    elif case == "missing_path":
        data = str(_yaml(tmp_path, f"- {{path: {a}}}\n- {{path: nowhere}}\n"))
    elif case == "unknown_key":
        data = str(_yaml(tmp_path, f"- {{path: {a}, weight: 2}}\n"))
    else:
        write_classes(b, {"cat": 6, "dog": 6}, start_seed=100)
        (tmp_path / "map.yaml").write_text(
            "fox: cat\n" if case == "map_unknown_class" else "cat: [cat, dog]\n"
        )
        data = str(_yaml(tmp_path, f"- {{path: {a}}}\n- {{path: {b}, label_map: map.yaml}}\n"))
    with pytest.raises(DataError) as err:
        split_sources(data)
    message = str(err.value)
    assert expected in message and "\n" not in message, message
