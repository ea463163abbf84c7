"""The corruption-robustness hook after a cell trains (`run/robustness.py`), on stand-ins."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from stand_ins import SIZE, colour_split, stand_in_pretrained

from benchmark.run.records import CellRecord
from benchmark.run.robustness import (
    CLEAN,
    ROBUSTNESS_COLUMNS,
    CorruptedSets,
    ScoredModel,
    score_models,
    score_trained_cell,
    scored_subset,
    severity_plan,
)
from data_pipeline.corruptions import CORRUPTIONS, MAX_SEVERITY, corrupt


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
    # 9 images rotated over 5 severities: every point has 1 or 2 of them, each corruption all 9.
    assert len(table) == 1 + 5 * len(CORRUPTIONS)
    assert table.loc[0, ["corruption", "severity", "n"]].tolist() == ["none", 0, 9]
    corrupted = table[table["corruption"] != "none"]
    assert corrupted["n"].isin([1, 2]).all()
    assert (corrupted.groupby("corruption")["n"].sum() == 9).all()
    assert "of its training time" in capsys.readouterr().out


def uneven_split():
    """A test split of 13, 4 and 7 images in three classes (no pixels: the plan needs none)."""
    sizes = {"cardboard": 13, "glass": 4, "trash": 7}
    rows = [
        {"path": f"{name}/{i}.jpg", "label": name, "content_hash": f"{name[0]}{(7 * i) % 13:02d}"}
        for name, size in sizes.items()
        for i in range(size)
    ]
    return SimpleNamespace(subset=lambda split: pd.DataFrame(rows))


def test_the_severities_are_rotated_and_balanced_per_class_and_corruption():
    subset = scored_subset(uneven_split(), per_class=20)
    plan = severity_plan(subset)
    assert plan.shape == (24, len(CORRUPTIONS))  # one severity per image and corruption
    assert plan.min() == 1 and plan.max() == MAX_SEVERITY
    levels = range(1, MAX_SEVERITY + 1)
    for column in plan.T:
        overall = [np.sum(column == s) for s in levels]
        assert max(overall) - min(overall) <= 1
        for label in subset["label"].unique():
            mine = column[(subset["label"] == label).to_numpy()]
            counts = [np.sum(mine == s) for s in levels]
            assert max(counts) - min(counts) <= 1, (label, counts)
    assert all(len(set(row)) == min(len(CORRUPTIONS), MAX_SEVERITY) for row in plan)
    np.testing.assert_array_equal(plan, severity_plan(scored_subset(uneven_split(), 20)))


class CountingModel:
    """Predicts class 0 for every image and remembers how many images it was shown."""

    def __init__(self):
        self.images = 0

    def predict(self, inputs, batch_size, verbose):
        self.images += len(inputs)
        return np.tile([1.0, 0.0, 0.0], (len(inputs), 1))


def test_each_image_is_predicted_clean_and_once_per_corruption_at_its_severity(split):
    model = CountingModel()
    scored = ScoredModel("c", "m", 0.0, 0, model, "raw", split.class_names)
    rows = score_models([scored], split, SIZE, per_class=3)["c"]
    n = 9
    assert model.images == n * (1 + len(CORRUPTIONS))  # 10 passes an image, not 46
    assert (rows[0].corruption, rows[0].severity, rows[0].n) == (CLEAN, 0, n)
    for name in CORRUPTIONS:
        assert sum(r.n for r in rows if r.corruption == name) == n
    subset = scored_subset(split, per_class=3)
    sets = CorruptedSets(subset, SIZE)
    clean = sets.images(CLEAN)
    for name in CORRUPTIONS[:3]:
        for i, severity in enumerate(sets.severity_column(name)):
            alone = corrupt(clean[i : i + 1], name, int(severity), [sets.keys[i]])
            np.testing.assert_array_equal(sets.images(name)[i], alone[0])


def test_the_per_class_help_states_the_hooks_default():
    """The parser does not import the scorer (it would load pandas and scikit-learn before any
    refusal), so its help text repeats `PER_CLASS`: this keeps the two equal."""
    from benchmark.cli.folder_parsers import build_robustness_parser
    from benchmark.run.robustness import PER_CLASS

    (action,) = [a for a in build_robustness_parser()._actions if "--per-class" in a.option_strings]
    assert f"default {PER_CLASS}," in action.help
