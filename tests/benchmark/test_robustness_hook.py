"""The corruption-robustness hook after a cell trains (`run/robustness.py`), on stand-ins."""

from types import SimpleNamespace

import pandas as pd
import pytest
from stand_ins import SIZE, colour_split, stand_in_pretrained

from benchmark.run.records import CellRecord
from benchmark.run.robustness import ROBUSTNESS_COLUMNS, score_trained_cell, scored_subset
from data_pipeline.corruptions import CORRUPTIONS


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    return colour_split(tmp_path_factory.mktemp("colours"))  # 3 test images per class


def context(run_dir, split, robustness="on"):
    ctx = SimpleNamespace(config=SimpleNamespace(robustness=robustness), run_dir=run_dir)
    ctx.for_fold = lambda fold: SimpleNamespace(split=split)
    return ctx


def record(split) -> CellRecord:
    return CellRecord(
        cell_id="stand_in__alpha0__seed0",
        index=0,
        model="stand_in",
        alpha=0.0,
        seed=0,
        class_names=split.class_names,
        image_size=SIZE,
        preprocess="raw",
        timings={"train_seconds": 10.0},
    )


def test_the_subset_takes_up_to_n_per_class_by_content_hash_in_file_order(split):
    chosen = scored_subset(split, per_class=2)
    assert chosen["label"].value_counts().to_dict() == {name: 2 for name in split.class_names}
    test = split.subset("test")
    for name, part in test.groupby("label"):
        kept = chosen[chosen["label"] == name]
        assert sorted(kept["content_hash"]) == sorted(part["content_hash"])[:2]
    positions = [list(test["path"]).index(p) for p in chosen["path"]]
    assert positions == sorted(positions)


def test_robustness_off_scores_nothing(split, tmp_path):
    unusable = object()  # would fail at once if the hook tried to predict with it
    score_trained_cell(context(tmp_path, split, "off"), record(split), unusable)
    assert not (tmp_path / "robustness").exists() and not (tmp_path / "robustness.csv").exists()


def test_a_scoring_failure_is_a_warning_not_a_failed_cell(split, tmp_path, capsys):
    score_trained_cell(context(tmp_path, split), record(split), object())  # no predict()
    out = capsys.readouterr().out
    assert "warning: stand_in__alpha0__seed0: corruption robustness not scored" in out
    assert f"run_benchmark.py robustness {tmp_path}" in out
    assert not (tmp_path / "robustness.csv").exists()


def test_the_in_memory_model_is_scored_clean_and_corrupted(split, tmp_path, capsys):
    model = stand_in_pretrained().model
    score_trained_cell(context(tmp_path, split), record(split), model)
    table = pd.read_csv(tmp_path / "robustness.csv")
    assert list(table.columns) == ROBUSTNESS_COLUMNS
    assert len(table) == 1 + 5 * len(CORRUPTIONS) and (table["n"] == 9).all()
    assert table.loc[0, ["corruption", "severity"]].tolist() == ["none", 0]
    assert "of its training time" in capsys.readouterr().out
