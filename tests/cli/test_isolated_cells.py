"""Each kind of pretrained model trains in its own child process (`--isolate-cells on`), as the
no-argument run does for grids of 10 cells or more: packaged Lite weights, a Keras application with
a weights file, and image + text fusion with the real MiniLM encoder."""

import json

import pandas as pd
from cli_helpers import make_images, run_cli
from test_mixed_grid import captioned_manifest

SHRUNK = (  # 32 px, one epoch a phase, each cell in its own child process
    "--image-size",
    "32",
    "--batch-size",
    "8",
    "--initial-epochs",
    "1",
    "--fine-tune-epochs",
    "1",
    "--isolate-cells",
    "on",
    "--no-profile",
    "--save-models",
    "none",
    "--quiet",
)
FAST = ("--alphas", "0", *SHRUNK)


def trained_cells(run_dir, models):
    for model in models:
        record = json.loads((run_dir / "cells" / f"{model}__alpha0__seed0.json").read_text())
        assert record["status"] == "ok", record.get("error")
        assert [phase["name"] for phase in record["phases"]] == ["head", "fine_tune"], model


def test_isolated_cells_of_each_pretrained_kind_train(minilm_path, tmp_path):
    from models import BuildSpec, build_model

    manifest = captioned_manifest(tmp_path / "data", per_class=8)
    packaged = ["efficientnet_lite0", "fusion_efficientnet_lite0"]
    done = run_cli(
        "--models",
        ",".join(packaged),
        "--text-encoder",
        minilm_path,
        "--sequence-length",
        "12",
        "--data",
        str(manifest),
        "--output",
        str(tmp_path / "packaged"),
        *FAST,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "own process" in done.stdout
    trained_cells(tmp_path / "packaged", packaged)

    weights = tmp_path / "backbone.weights.h5"  # a Keras application from a weights file
    build_model(
        "mobilenet_v3_small", BuildSpec(num_classes=3, image_size=32, weights="none")
    ).backbone.save_weights(weights)
    done = run_cli(
        "--models",
        "mobilenet_v3_small",
        "--weights",
        str(weights),
        "--data",
        str(manifest),
        "--output",
        str(tmp_path / "file"),
        *FAST,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    trained_cells(tmp_path / "file", ["mobilenet_v3_small"])


def test_the_whole_default_grid_trains_in_isolated_cells(tmp_path):
    """The no-argument run's grid (its models and alphas, nothing named), shrunk to 32 px and one
    epoch a phase on a tiny sample, each cell in its own child process."""
    from benchmark.config.run_config import DEFAULT_ALPHAS, DEFAULT_MODELS

    data = make_images(tmp_path / "data", per_class=8)
    run_dir = tmp_path / "run"
    done = run_cli("--data", str(data), "--output", str(run_dir), *SHRUNK)
    assert done.returncode == 0, done.stdout + done.stderr
    board = pd.read_csv(run_dir / "leaderboard.csv")
    assert (board["status"] == "ok").all()
    assert set(board["model"]) == set(DEFAULT_MODELS)
    assert sorted(set(board["alpha"])) == sorted(DEFAULT_ALPHAS)
    assert len(board) == len(DEFAULT_MODELS) * len(DEFAULT_ALPHAS)
