"""scan_dataset over the three layouts, and every bad input it must reject with one clear line."""

from pathlib import Path

import pandas as pd
import pytest
from dp_helpers import write_classes, write_image
from PIL import Image

from data_pipeline import DataError, scan_dataset


def test_class_folders_take_every_extension_in_any_case_and_ignore_other_files(tmp_path):
    root = tmp_path / "data"
    for i, name in enumerate(["a.jpg", "b.JPEG", "c.png", "d.Bmp", "e.gif", "f.webp"]):
        write_image(
            root / "cat" / name,
            i,
            fmt={"jpg": "JPEG", "jpeg": "JPEG", "bmp": "BMP"}.get(name.split(".")[1].lower()),
        )
    write_classes(root, {"dog": 2}, start_seed=10)
    (root / "cat" / "README").write_text("not an image")
    (root / "cat" / ".DS_Store").write_bytes(b"\0\1")
    scanned = scan_dataset(root)
    assert scanned.layout == "folders" and scanned.class_names == ["cat", "dog"]
    assert sorted(Path(p).name for p in scanned.table["path"]) == [
        "a.jpg",
        "b.JPEG",
        "c.png",
        "d.Bmp",
        "dog0.png",
        "dog1.png",
        "e.gif",
        "f.webp",
    ]
    assert list(scanned.table.columns) == ["path", "label", "split", "caption", "content_hash"]
    assert (scanned.table["split"] == "").all() and scanned.table["content_hash"].str.len().eq(
        40
    ).all()
    assert all(Path(p).is_absolute() for p in scanned.table["path"])


def test_gif_is_read_by_its_first_frame(tmp_path):
    frames = [Image.new("RGB", (16, 16), c) for c in ("red", "blue")]
    root = tmp_path / "data"
    (root / "a").mkdir(parents=True)
    frames[0].save(root / "a" / "anim.gif", save_all=True, append_images=frames[1:])
    frames[0].save(root / "a" / "still.gif")
    write_classes(root, {"b": 1})
    table = scan_dataset(root).table
    hashes = table.set_index(table["path"].map(lambda p: Path(p).name))["content_hash"]
    assert hashes["anim.gif"] == hashes["still.gif"]


@pytest.mark.parametrize(
    "names",
    [
        ("train", "val", "test"),
        ("CVPR_2024_dataset_Train", "CVPR_2024_dataset_Val", "CVPR_2024_dataset_TEST"),
    ],
)
def test_presplit_folders_are_used_as_given(tmp_path, names):
    for seed, split_dir in enumerate(names):
        write_classes(tmp_path / split_dir, {"cat": 2, "dog": 1}, start_seed=10 * seed)
    scanned = scan_dataset(tmp_path)
    assert scanned.layout == "presplit" and scanned.class_names == ["cat", "dog"]
    assert scanned.table.groupby("split").size().to_dict() == {"test": 3, "train": 3, "val": 3}


def test_presplit_duplicate_across_splits_is_an_error_naming_both_files(tmp_path):
    for seed, split_dir in enumerate(("train", "val")):
        write_classes(tmp_path / split_dir, {"cat": 2, "dog": 2}, start_seed=10 * seed)
    write_image(tmp_path / "val" / "cat" / "copy.png", 0)  # same pixels as train/cat/cat0.png
    with pytest.raises(DataError, match=r"cat/cat0.png \(train\) = cat/copy.png \(val\)"):
        scan_dataset(tmp_path)


def test_manifest_with_split_and_caption(tmp_path):
    write_classes(tmp_path / "img", {"cat": 2, "dog": 2})
    pd.DataFrame(
        {
            "path": [
                "img/cat/cat0.png",
                "img/cat/cat1.png",
                "img/dog/dog0.png",
                "img/dog/dog1.png",
            ],
            "label": ["cat", "cat", "dog", "dog"],
            "split": ["train", "val", "train", "VAL"],
            "caption": ["a small animal", "", "a loyal animal", "a big animal"],
        }
    ).to_csv(tmp_path / "m.csv", index=False)
    scanned = scan_dataset(tmp_path / "m.csv")
    assert scanned.layout == "manifest" and scanned.class_names == ["cat", "dog"]
    assert list(scanned.table["split"]) == ["train", "val", "train", "val"]
    assert list(scanned.table["caption"]) == [
        "a small animal",
        "cat",
        "a loyal animal",
        "a big animal",
    ]  # blank -> file name


def test_manifest_without_split_is_unsplit(tmp_path):
    write_classes(tmp_path, {"cat": 2, "dog": 2})
    pd.DataFrame(
        {
            "path": ["cat/cat0.png", "cat/cat1.png", "dog/dog0.png", "dog/dog1.png"],
            "label": ["cat", "cat", "dog", "dog"],
        }
    ).to_csv(tmp_path / "m.csv", index=False)
    assert (scan_dataset(tmp_path / "m.csv").table["split"] == "").all()


@pytest.mark.parametrize(
    "rows, message",
    [
        ({"path": ["cat/cat0.png"]}, r"m.csv has no 'label' column"),
        ({"label": ["cat"]}, r"m.csv has no 'path' column"),
        (
            {"path": ["cat/cat0.png", "cat/nope.png"], "label": ["cat", "cat"]},
            r"m.csv lists 1 file\(s\) that do not exist \(cat/nope.png\)",
        ),
        (
            {"path": ["cat/cat0.png", "../x.png"], "label": ["cat", "dog"]},
            r"m.csv lists 1 path\(s\) outside its folder \(../x.png\)",
        ),
        (
            {
                "path": ["cat/cat0.png", "dog/dog0.png"],
                "label": ["cat", "dog"],
                "split": ["train", "later"],
            },
            r"split values \['later'\]",
        ),
        (
            {
                "path": ["cat/cat0.png", "cat/cat0.png"],
                "label": ["cat", "cat"],
                "split": ["train", "val"],
            },
            r"in two splits",
        ),
    ],
)
def test_bad_manifests(tmp_path, rows, message):
    write_classes(tmp_path, {"cat": 1, "dog": 1})
    write_image(tmp_path.parent / "x.png", 99)
    pd.DataFrame(rows).to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(DataError, match=message):
        scan_dataset(tmp_path / "m.csv")


def test_missing_root(tmp_path):
    with pytest.raises(DataError, match=r"dataset .*nowhere does not exist"):
        scan_dataset(tmp_path / "nowhere")


def test_no_images(tmp_path):
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "notes.txt").write_text("x")
    with pytest.raises(DataError, match=r"no images .* found under"):
        scan_dataset(tmp_path)


def test_one_class_only(tmp_path):
    write_classes(tmp_path, {"cat": 3})
    with pytest.raises(
        DataError, match=r"only one class \('cat'\) under .*at least two class folders"
    ):
        scan_dataset(tmp_path)


def test_empty_class_folder_is_dropped_with_a_warning(tmp_path, caplog):
    write_classes(tmp_path, {"cat": 2, "dog": 2})
    (tmp_path / "eel").mkdir()
    scanned = scan_dataset(tmp_path)
    assert scanned.class_names == ["cat", "dog"]
    assert any("eel has no images" in w for w in scanned.warnings)
    assert "eel has no images" in caplog.text


def test_empty_class_folder_leaving_one_class_is_an_error(tmp_path):
    write_classes(tmp_path, {"cat": 2})
    (tmp_path / "dog").mkdir()
    with pytest.raises(DataError, match="only one class"):
        scan_dataset(tmp_path)


def _corrupt_tree(root: Path) -> Path:
    write_classes(root, {"cat": 3, "dog": 3})
    (root / "cat" / "text.jpg").write_text("hello")
    truncated = root / "dog" / "cut.jpg"
    write_image(truncated, 7, size=(64, 64), fmt="JPEG")
    truncated.write_bytes(truncated.read_bytes()[:-200])
    (root / "dog" / "empty.png").write_bytes(b"")
    return root


def test_unreadable_images_are_all_listed_in_one_error(tmp_path):
    with pytest.raises(DataError) as caught:
        scan_dataset(_corrupt_tree(tmp_path))
    message = str(caught.value)
    assert "\n" not in message and message.startswith("3 unreadable image(s) under")
    assert "cat/text.jpg (not an image)" in message and "dog/empty.png" in message
    assert "dog/cut.jpg (image file is truncated" in message
    assert message.endswith("fix or remove them, or pass --skip-corrupt")


def test_skip_corrupt_skips_and_lists_them(tmp_path):
    scanned = scan_dataset(_corrupt_tree(tmp_path), skip_corrupt=True)
    assert sorted(Path(p).name for p, _ in scanned.skipped) == ["cut.jpg", "empty.png", "text.jpg"]
    assert len(scanned.table) == 6 and any("skipped 3" in w for w in scanned.warnings)


def test_identical_images_with_different_labels_are_warned_about(tmp_path):
    write_classes(tmp_path, {"cat": 2, "dog": 2})
    write_image(tmp_path / "dog" / "twin.png", 0)  # same pixels as cat/cat0.png
    scanned = scan_dataset(tmp_path)
    assert any("cat/cat0.png = dog/twin.png" in w for w in scanned.warnings)


@pytest.mark.parametrize("only_in", [("test",), ("val",), ("val", "test")])
def test_presplit_class_without_training_images_is_named(tmp_path, only_in):
    write_classes(tmp_path / "train", {"cat": 2, "dog": 2})
    for seed, split in enumerate(("val", "test")):
        write_classes(tmp_path / split, {"cat": 1, "dog": 1}, start_seed=10 + 10 * seed)
    for seed, split in enumerate(only_in):
        write_classes(tmp_path / split, {"eel": 1}, start_seed=50 + seed)
    with pytest.raises(
        DataError,
        match=rf"class 'eel' has no train images \(only {'/'.join(only_in)}\) under {tmp_path}; "
        r"a class needs training images",
    ):
        scan_dataset(tmp_path)


def test_manifest_class_without_training_rows_is_named(tmp_path):
    write_classes(tmp_path, {"cat": 2, "dog": 2, "eel": 1})
    pd.DataFrame(
        {
            "path": [
                "cat/cat0.png",
                "cat/cat1.png",
                "dog/dog0.png",
                "dog/dog1.png",
                "eel/eel0.png",
            ],
            "label": ["cat", "cat", "dog", "dog", "eel"],
            "split": ["train", "val", "train", "val", "val"],
        }
    ).to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(
        DataError, match=r"class 'eel' has no train images \(only val\) under .*m.csv"
    ):
        scan_dataset(tmp_path / "m.csv")


def test_a_manifest_that_is_not_utf8_is_named_with_its_byte_and_line(tmp_path):
    write_classes(tmp_path, {"cat": 1, "dog": 1})
    (tmp_path / "m.csv").write_bytes(
        "path,label\ncat/cat0.png,cat\ndog/dog0.png,chien fid\xe8le\n".encode("latin-1")
    )
    with pytest.raises(
        DataError,
        match=r"manifest .*m.csv is not UTF-8 text \(byte 0xe8 on line 3\); re-save it as UTF-8",
    ):
        scan_dataset(tmp_path / "m.csv")


def test_a_utf8_manifest_with_a_byte_order_mark_reads(tmp_path):
    write_classes(tmp_path, {"cat": 1, "dog": 1})
    (tmp_path / "m.csv").write_bytes(
        "path,label\ncat/cat0.png,chat\ndog/dog0.png,chien fidèle\n".encode("utf-8-sig")
    )
    assert scan_dataset(tmp_path / "m.csv").class_names == ["chat", "chien fidèle"]


def test_a_dataset_root_that_is_a_symlink_loop_is_named(tmp_path):
    (tmp_path / "data").symlink_to(tmp_path / "other")
    (tmp_path / "other").symlink_to(tmp_path / "data")
    with pytest.raises(DataError, match=rf"dataset {tmp_path}/data is a symlink loop"):
        scan_dataset(tmp_path / "data")


def test_symlink_loops_inside_the_dataset_are_named_and_skipped(tmp_path):
    write_classes(tmp_path, {"cat": 2, "dog": 2})
    (tmp_path / "cat" / "again").symlink_to(
        tmp_path
    )  # back to the root: would list every class under cat
    (tmp_path / "dog" / "self.png").symlink_to(tmp_path / "dog" / "self.png")
    (tmp_path / "eel").symlink_to(tmp_path / "eel")
    linked = write_classes(tmp_path.parent / f"{tmp_path.name}_extra", {"more": 1}, start_seed=20)
    (tmp_path / "dog" / "linked").symlink_to(linked / "more")  # a plain linked folder is followed
    scanned = scan_dataset(tmp_path)
    assert sorted(scanned.table["path"].map(lambda p: Path(p).name)) == [
        "cat0.png",
        "cat1.png",
        "dog0.png",
        "dog1.png",
        "more0.png",
    ]
    loops = [w for w in scanned.warnings if "symlink loop" in w]
    assert len(loops) == 3, scanned.warnings
    assert any(f"{tmp_path}/cat/again" in w for w in loops) and any(
        f"{tmp_path}/dog/self.png" in w for w in loops
    )
    assert any(f"{tmp_path}/eel " in w for w in loops)
