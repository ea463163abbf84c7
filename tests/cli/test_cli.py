"""The real command line as a subprocess on tiny data: a full grid, resume, predict, and bad
input."""

import json
import os

import pandas as pd
import pytest
from cli_helpers import TINY_FLAGS, make_images, one_line_error, run_cli


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A two-cell grid (simple_cnn x alpha 0, 1) run to the end once, with deployment profiling
    on."""
    root = tmp_path_factory.mktemp("grid")
    data = make_images(root / "data")
    run_dir = root / "run"
    done = run_cli(*TINY_FLAGS, "--data", str(data), "--output", str(run_dir))
    assert done.returncode == 0, done.stdout + done.stderr
    return data, run_dir, done


def test_full_grid_writes_records_tables_report_models_and_costs(finished_run):
    _, run_dir, done = finished_run
    records = {p.stem: json.loads(p.read_text()) for p in (run_dir / "cells").glob("*.json")}
    assert sorted(records) == ["simple_cnn__alpha0__seed0", "simple_cnn__alpha1__seed0"]
    record = records["simple_cnn__alpha1__seed0"]
    assert record["status"] == "ok" and record["config"]["alphas"] == [0.0, 1.0]
    assert {"python", "tensorflow", "keras", "keras_hub", "devices"} <= set(record["environment"])
    assert (
        set(record["metrics"]) == {"val", "test"}
        and "confusion_matrix" in record["metrics"]["test"]
    )
    board = pd.read_csv(run_dir / "leaderboard.csv")
    assert list(board["rank"]) == [1, 2]
    assert board["val_accuracy"].is_monotonic_decreasing
    assert board[["infer_ms_b1", "infer_img_s_b32", "size_mb", "gflops"]].notna().all().all()
    deployment = pd.read_csv(run_dir / "deployment.csv")
    assert {"keras", "tflite", "onnx"} <= set(deployment["format"])
    for name in (
        "splits.csv",
        "config.yaml",
        "report.md",
        "alpha_sweep.md",
        "best_per_model.csv",
        "saved_models/simple_cnn.keras",
        "saved_models/simple_cnn.json",
    ):
        assert (run_dir / name).is_file(), name
    assert not (run_dir / "work").exists() or not any((run_dir / "work").iterdir()), (
        "backups must be removed"
    )
    assert "leaderboard (ranked by validation accuracy" in done.stdout


def test_rerun_skips_finished_cells_and_fills_a_deleted_one(finished_run):
    data, run_dir, _ = finished_run
    kept = run_dir / "cells" / "simple_cnn__alpha0__seed0.json"
    kept_before = kept.read_text()
    (run_dir / "cells" / "simple_cnn__alpha1__seed0.json").unlink()
    done = run_cli(*TINY_FLAGS, "--data", str(data), "--output", str(run_dir), "--no-profile")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "resuming: 1 of 2 cells already finished, 1 to run" in done.stdout
    assert "start simple_cnn__alpha0__seed0" not in done.stdout
    assert kept.read_text() == kept_before
    assert (run_dir / "cells" / "simple_cnn__alpha1__seed0.json").is_file()


def test_predict_classifies_with_the_best_saved_model(finished_run, tmp_path):
    data, run_dir, _ = finished_run
    csv = tmp_path / "predictions.csv"
    done = run_cli("predict", str(run_dir), str(data / "glass"), "--top-k", "2", "--csv", str(csv))
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(csv)
    assert len(table) == len(list((data / "glass").iterdir()))
    assert set(table["label_1"]) <= {"glass", "paper", "plastic"}
    assert ((table["prob_1"] >= table["prob_2"]) & (table["prob_1"] <= 1)).all()


def test_explain_writes_one_heatmap_per_image_and_the_report_has_the_grid(finished_run, tmp_path):
    data, run_dir, _ = finished_run
    images = sorted((data / "paper").iterdir())[:3]
    done = run_cli("explain", str(run_dir), *map(str, images), "--out", str(tmp_path / "maps"))
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "maps").iterdir()) == sorted(
        f"{p.stem}.gradcam.png" for p in images
    )
    assert (
        "gradcam.png" in (run_dir / "report.md").read_text()
        and (run_dir / "plots" / "gradcam.png").is_file()
    )


def test_unknown_model_is_one_line_naming_it(tmp_path):
    line = one_line_error(
        run_cli("--models", "mobilenet_v9", "--output", str(tmp_path / "run"), "--dry-run")
    )
    assert "mobilenet_v9" in line and "--list-models" in line


def test_bad_alpha_is_one_line_naming_the_flag(tmp_path):
    line = one_line_error(
        run_cli("--alphas", "0,-1", "--models", "simple_cnn", "--output", str(tmp_path / "run"))
    )
    assert "--alphas" in line and "-1" in line


def test_corrupt_image_is_one_line_naming_the_file_and_nothing_is_written(tmp_path):
    data = make_images(tmp_path / "data")
    (data / "paper" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    run_dir = tmp_path / "run"
    line = one_line_error(run_cli(*TINY_FLAGS, "--data", str(data), "--output", str(run_dir)))
    assert "broken.jpg" in line and "--skip-corrupt" in line
    assert not (run_dir / "cells").exists()


def test_missing_imagenet_weights_stop_before_training_and_name_the_offline_preset(tmp_path):
    done = run_cli(
        "--models",
        "mobilenet_v2",
        "--alphas",
        "0",
        "--output",
        str(tmp_path / "run"),
        "--dry-run",
        env={**os.environ, "KERAS_HOME": str(tmp_path / "empty_keras_home")},
    )
    line = one_line_error(done)
    assert "mobilenet_v2" in line and "fetch-weights" in line and "--preset smoke" in line


def test_tune_subcommand_writes_trials_importance_and_a_runnable_best_config(tmp_path):
    data = make_images(tmp_path / "data")
    out = tmp_path / "tune"
    done = run_cli(
        "tune",
        "--model",
        "simple_cnn",
        "--tuner",
        "random",
        "--max-trials",
        "2",
        "--max-epochs",
        "1",
        "--image-size",
        "32",
        "--batch-size",
        "8",
        "--weights",
        "none",
        "--data",
        str(data),
        "--output",
        str(out),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == 2 and {"trial_id", "status"} <= set(trials.columns)
    for name in ("trials.md", "importance.csv", "best_config.yaml"):
        assert (out / name).is_file(), name
    dry = run_cli(
        "--config", str(out / "best_config.yaml"), "--output", str(tmp_path / "run"), "--dry-run"
    )
    assert dry.returncode == 0, dry.stderr
