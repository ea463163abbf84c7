"""The real TrashNet (skipped when absent) and the embedded sample."""

from pathlib import Path

from data_pipeline import sample_data_dir, scan_dataset, split_dataset


def test_trashnet_duplicates_are_exactly_the_three_known_pairs_and_stay_together(trashnet):
    split = split_dataset(scan_dataset(trashnet))
    names = sorted(
        sorted(f"{Path(p).parent.name}/{Path(p).name}" for p in group)
        for group in split.leaks.duplicate_groups
    )
    assert names == [
        ["glass/glass115.jpg", "metal/metal91.jpg"],
        ["glass/glass176.jpg", "plastic/plastic152.jpg"],
        ["glass/glass389.jpg", "plastic/plastic332.jpg"],
    ]
    assert split.leaks.label_conflicts == split.leaks.duplicate_groups
    assert (split.table.groupby("content_hash")["split"].nunique() == 1).all()
    assert min(split.counts()[part]["trash"] for part in ("train", "val", "test")) >= 20


def test_embedded_sample_is_a_clean_six_class_dataset():
    scanned = scan_dataset(sample_data_dir())
    counts = scanned.table["label"].value_counts().to_dict()
    assert counts == {
        "paper": 119,
        "glass": 100,
        "plastic": 96,
        "metal": 82,
        "cardboard": 81,
        "trash": 30,
    }
    assert not scanned.table["content_hash"].duplicated().any() and not scanned.skipped
    assert (sample_data_dir() / "LICENSE").is_file() and "garythung/trashnet" in (
        sample_data_dir() / "README.md"
    ).read_text()
    assert sum(p.stat().st_size for p in sample_data_dir().rglob("*.jpg")) < 3_000_000
