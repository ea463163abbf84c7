"""`evaluate` through the real command line: a tiny trained run scored on a folder with other class
names."""

import json
import shutil

import pandas as pd
import pytest
from cli_helpers import TINY_FLAGS, make_images, one_line_error, run_cli


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """simple_cnn x alpha 0, 1 with every cell's model saved, and a photo folder whose classes are
    renamed and merged."""
    root = tmp_path_factory.mktemp("evaluate")
    run_dir = root / "run"
    done = run_cli(
        *TINY_FLAGS,
        "--data",
        str(make_images(root / "data")),
        "--output",
        str(run_dir),
        "--save-models",
        "all",
        "--no-profile",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    photos = make_images(root / "fresh", per_class=6, size=48)  # other pixels than the run's images
    (photos / "glass").rename(photos / "Glass")
    (photos / "paper_or_plastic").mkdir()
    for name in ("paper", "plastic"):
        for image in (photos / name).iterdir():
            image.rename(photos / "paper_or_plastic" / image.name)
        shutil.rmtree(photos / name)
    label_map = root / "map.yaml"
    label_map.write_text("paper_or_plastic: [paper, plastic]\n")
    return run_dir, photos, label_map


def test_evaluate_scores_every_saved_cell_through_a_many_to_one_map(trained):
    run_dir, photos, label_map = trained
    done = run_cli(
        "evaluate", str(run_dir), str(photos), "--label-map", str(label_map), "--cells", "all"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Glass -> glass; paper_or_plastic -> paper | plastic" in done.stdout
    table = pd.read_csv(run_dir / "cross_dataset.csv")
    assert sorted(table["cell_id"]) == ["simple_cnn__alpha0__seed0", "simple_cnn__alpha1__seed0"]
    assert (table["status"] == "ok").all() and (table["images"] == 18).all()
    (stored,) = (run_dir / "cross_dataset").glob("*.json")
    for model in json.loads(stored.read_text())["models"]:
        predictions = pd.read_csv(run_dir / model["predictions_file"])
        allowed = predictions["label"].map(
            {"Glass": {"glass"}, "paper_or_plastic": {"paper", "plastic"}}
        )
        assert (
            predictions["correct"] == [p in a for p, a in zip(predictions["pred"], allowed)]
        ).all()
        assert model["accuracy"] == pytest.approx(predictions["correct"].mean())
        assert sum(map(sum, model["confusion"])) == 18 and len(model["confusion"]) == 2
        record = json.loads((run_dir / "cells" / f"{model['cell_id']}.json").read_text())
        assert model["in_domain_test_accuracy"] == record["metrics"]["test"]["accuracy"]
        row = table.set_index("cell_id").loc[model["cell_id"]]
        assert row["drop"] == pytest.approx(
            record["metrics"]["test"]["accuracy"] - model["accuracy"]
        )
    board = pd.read_csv(run_dir / "leaderboard.csv").set_index("alpha")["test_accuracy_ci"]
    assert [board[alpha] for alpha in table["alpha"]] == list(table["in_domain_test_accuracy_ci"])
    assert (
        "## Will it work on other data? Cross-dataset evaluation"
        in (run_dir / "report.md").read_text()
    )


def test_an_unmatched_class_is_one_line_naming_it_and_the_flag(trained, tmp_path):
    run_dir, photos, _ = trained
    line = one_line_error(run_cli("evaluate", str(run_dir), str(photos), "--output", str(tmp_path)))
    assert "'paper_or_plastic'" in line and "--label-map" in line
    assert not (tmp_path / "cross_dataset.csv").exists()
