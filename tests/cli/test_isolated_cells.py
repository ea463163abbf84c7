"""Each kind of pretrained model trains in its own child process (`--isolate-cells on`), as the
no-argument run does for grids of 10 cells or more: packaged Lite weights, a Keras application with
a weights file, image + text fusion with the real MiniLM encoder, a keras-hub preset from a local
cache (the whole default grid is in test_isolated_default_grid.py)."""

import json
import os
from pathlib import Path

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


def local_dinov2_preset(cache: Path, side: int = 224) -> Path:
    """A tiny random DINOv2 saved as keras-hub's `dinov2_small` preset in a kagglehub cache, marked
    complete, so `from_preset("dinov2_small")` loads it with no network (as a pre-filled cache
    from `fetch-weights` does on a cluster)."""
    import keras
    import keras_hub
    from kagglehub.cache import Cache
    from kagglehub.handle import parse_model_handle

    handle = keras_hub.models.Backbone.presets["dinov2_small"]["kaggle_handle"]
    handle = parse_model_handle(handle.removeprefix("kaggle://"))
    folder = cache / "models" / handle.owner / handle.model / handle.framework / handle.variation
    folder = folder / str(handle.version)
    folder.mkdir(parents=True)
    keras.utils.set_random_seed(0)
    keras_hub.models.DINOV2Backbone(
        patch_size=8,
        intermediate_dim=32,
        image_shape=(side, side, 3),  # the real preset's 224; the cell resizes it to 32 px
        position_embedding_shape=(side, side, 3),
        num_layers=2,
        num_heads=2,
        hidden_dim=16,
    ).save_to_preset(str(folder))
    keras_hub.layers.DINOV2ImageConverter(
        image_size=(side, side), scale=1 / 127.5, offset=-1.0
    ).save_to_preset(str(folder))
    marker = Cache()  # reads KAGGLEHUB_CACHE, which the caller points at `cache`
    for path in folder.iterdir():
        marker.mark_as_complete(handle, path.name)
    return cache


def test_an_isolated_hub_cell_loads_its_preset_from_a_local_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "kagglehub"))
    cache = local_dinov2_preset(tmp_path / "kagglehub")
    data = make_images(tmp_path / "data", per_class=8)
    env = {**os.environ, "KAGGLEHUB_CACHE": str(cache)}
    done = run_cli(
        "--models",
        "hub_dinov2_small",
        "--data",
        str(data),
        "--output",
        str(tmp_path / "hub"),
        *FAST,
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    trained_cells(tmp_path / "hub", ["hub_dinov2_small"])


def test_a_cached_preset_that_does_not_fit_is_one_line(tmp_path, monkeypatch):
    """A cache holding a preset saved for another input (not the real `dinov2_small`) is named in
    one line by the pre-run weight check, not a Keras traceback."""
    from cli_helpers import one_line_error

    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "kagglehub"))
    cache = local_dinov2_preset(tmp_path / "kagglehub", side=32)
    data = make_images(tmp_path / "data", per_class=8)
    env = {**os.environ, "KAGGLEHUB_CACHE": str(cache)}
    run_dir = tmp_path / "run"
    line = one_line_error(
        run_cli(
            "--models",
            "hub_dinov2_small",
            "--data",
            str(data),
            "--output",
            str(run_dir),
            *FAST,
            env=env,
        )
    )
    assert "hub_dinov2_small" in line and str(cache) in line
    assert not run_dir.exists()  # refused before the folder is claimed
