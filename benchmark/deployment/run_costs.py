"""Deployment cost of each benchmarked model, measured after the grid on its best cell's saved
model.

Cost depends on the architecture and input size, not on alpha, so one profile per model (of the
cell the leaderboard ranks first for it) feeds every row of that model. Quantised variants are
scored on that cell's test split, which is why the profile needs the trained weights: it reads
`saved_models/<model>.keras` (written by the default `--save-models best`). Profiles are stored as
`deployment/<model>.json` and redone only when a better cell of the model has been saved since.
In a K-fold run the best cell is scored on its own fold's test images (`splits/fold<k>.csv`).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.io import write_json_atomic
from benchmark.output import notice, say
from benchmark.plan.model_plan import model_kind
from benchmark.run.folder import split_file
from benchmark.run.records import CellRecord, load_records, validation_rank_key
from data_pipeline import make_dataset, read_split_file
from models import get_entry, preprocess_function, register_custom_layers

REPRESENTATIVE_IMAGES = 64  # int8_full calibration images from the training split
# The one export kept beside the profile (the others are measured and dropped): the full-integer
# LiteRT model is what a phone or microcontroller would run, and `serve` classifies with it.
KEPT_EXPORT = "int8_full"


def profile_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "deployment"


def litert_export(run_dir: Path, model: str) -> Path:
    """The kept LiteRT export of the profiled cell: `deployment/<model>.int8_full.tflite`."""
    return profile_dir(run_dir) / f"{model}.{KEPT_EXPORT}.tflite"


def load_profiles(run_dir: Path) -> list[dict]:
    """The stored per-model profiles of a run folder (empty when profiling was skipped)."""
    folder = profile_dir(run_dir)
    return (
        [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
        if folder.is_dir()
        else []
    )


def best_cells(run_dir: Path) -> dict[str, CellRecord]:
    """Each model's best finished cell, as `validation_rank_key` ranks them."""
    best: dict[str, CellRecord] = {}
    for record in load_records(run_dir):
        if not record.ok or not record.metrics:
            continue
        current = best.get(record.model)
        if current is None or validation_rank_key(record) > validation_rank_key(current):
            best[record.model] = record
    return best


def profile_run(run_dir: Path, *, quiet: bool = False) -> list[str]:
    """Profiles every image model whose best cell is saved; returns notes on the models it could not
    profile."""
    from benchmark.deployment.profile import profile_model

    run_dir = Path(run_dir)
    if not split_file(run_dir).is_file() and not split_file(run_dir, 0).is_file():
        return [
            "deployment cost not profiled: the run folder has no splits.csv (its test images are "
            "unknown)"
        ]
    stored = {p["model"]: p for p in load_profiles(run_dir)}
    notes = []
    for model_name, record in best_cells(run_dir).items():
        if model_kind(get_entry(record.registry_name)) in ("text", "fusion", "late_fusion"):
            notes.append(
                f"{model_name}: not profiled (deployment profiling takes single-input image models)"
            )
            continue
        if stored.get(model_name, {}).get("cell_id") == record.cell_id:
            continue
        saved = run_dir / "saved_models" / f"{model_name}.keras"
        sidecar = saved.with_suffix(".json")
        if (
            not sidecar.is_file()
            or json.loads(sidecar.read_text()).get("cell_id") != record.cell_id
        ):
            notes.append(
                f"{model_name}: not profiled (its best cell's model was not saved; use "
                "--save-models best)"
            )
            continue
        if not quiet:
            say(f"profiling deployment cost of {model_name} ({record.cell_id})")
        profile = _profile_saved(
            saved,
            record,
            read_split_file(split_file(run_dir, record.fold)),
            profile_model,
            keep=litert_export(run_dir, model_name),
        )
        write_json_atomic(profile_dir(run_dir) / f"{model_name}.json", profile)
    return notes


def _profile_saved(
    saved: Path, record: CellRecord, split, profile_model, keep: Path | None = None
) -> dict:
    import keras
    import keras_hub  # noqa: F401  (registers keras-hub layers so hub_* and zeroshot_* models deserialize)

    register_custom_layers()
    model = keras.saving.load_model(saved, compile=False)
    preprocess = preprocess_function(record.preprocess)

    def images(part: str, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        frame = split.subset(part)
        frame = frame if limit is None else frame.sample(n=min(limit, len(frame)), random_state=0)
        dataset = make_dataset(
            frame,
            split.class_names,
            image_size=record.image_size,
            batch_size=32,
            preprocess=preprocess,
        )
        batches = [(np.asarray(x), np.asarray(y)) for x, y in dataset]
        if not batches:
            return np.zeros((0, record.image_size, record.image_size, 3), np.float32), np.zeros(
                (0,), int
            )
        return np.concatenate([b[0] for b in batches]), np.concatenate(
            [b[1] for b in batches]
        ).argmax(axis=1)

    test_images, test_labels = images("test")
    representative, _ = images("train", REPRESENTATIVE_IMAGES)
    with tempfile.TemporaryDirectory() as work:
        profile = profile_model(model, test_images, test_labels, representative, Path(work))
        if keep is not None:  # replaced or removed: it always belongs to the profiled cell
            keep.unlink(missing_ok=True)
            export = Path(work) / f"model_{KEPT_EXPORT}.tflite"
            if export.is_file():
                keep.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(export, keep)
    return stored_profile(profile, record)


def stored_profile(profile, record: CellRecord) -> dict:
    """A `DeploymentProfile` as stored in `RUN_DIR/deployment/<model>.json`, tagged with the cell it
    measured."""
    return {
        "model": record.model,
        "cell_id": record.cell_id,
        "alpha": record.alpha,
        **{k: v for k, v in dataclasses.asdict(profile).items() if k != "variants"},
        "variants": [dataclasses.asdict(v) for v in profile.variants],
    }


# What `cost_columns` adds to each leaderboard row (after `params_m`: `tables.with_cost_columns`).
COST_COLUMNS = ("infer_ms_b1", "infer_img_s_b32", "size_mb", "gflops", "cost_device")


def cost_columns(run_dir: Path) -> pd.DataFrame:
    """Per model: `infer_ms_b1`, `infer_img_s_b32`, `size_mb`, `gflops` and the device they were
    measured on."""
    rows = [
        {
            "model": p["model"],
            "infer_ms_b1": p["infer_ms_b1"],
            "infer_img_s_b32": p["infer_img_s_b32"],
            "size_mb": p["keras_size_mb"],
            "gflops": p["gflops"],
            "cost_device": p["device"],
        }
        for p in load_profiles(run_dir)
    ]
    return pd.DataFrame(
        rows,
        columns=["model", *COST_COLUMNS],
    )


def deployment_frame(run_dir: Path) -> pd.DataFrame:
    """Every exported variant of every profiled model (the layout of `RUN_DIR/deployment.csv`)."""
    from benchmark.deployment.profile import DEPLOYMENT_COLUMNS

    rows = [
        {"model": p["model"], "alpha": p["alpha"], **variant}
        for p in load_profiles(run_dir)
        for variant in p["variants"]
    ]
    return pd.DataFrame(rows, columns=DEPLOYMENT_COLUMNS)


def print_notes(notes: list[str]) -> None:
    for note in notes:
        notice(note)
