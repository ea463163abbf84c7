"""What the app shows of a finished run, read from its files without TensorFlow.

Everything here runs before the first model loads, so a folder that is not a finished run, or one
whose best model was never saved, is refused in a second (one `run_benchmark:` line, exit 2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.errors import UsageError
from benchmark.run.calibrated import shown_probabilities, with_calibration
from benchmark.run.records import CellRecord, load_predictions, load_records, validation_rank_key
from benchmark.run.saved_models import saved_model_file, saved_models_dir

RESULTS_DIR = Path("results")
# Leaderboard columns the page shows (leaderboard.csv has ~35; the page links the full file).
BOARD_COLUMNS = (
    "rank",
    "model",
    "alpha",
    "val_accuracy",
    "val_macro_f1",
    "test_accuracy",
    "test_macro_f1",
    "worst_class",
    "infer_ms_b1",
    "size_mb",
    "status",
)
# A photo whose top-1 confidence is below this quantile of the validation photos' is flagged:
# 95 % of the run's own validation images were predicted more confidently than that.
UNLIKE_QUANTILE = 0.05
# Without validation predictions: flagged when the top class is not even twice as likely as chance.
FALLBACK_FACTOR = 2.0


def is_finished_run(path: Path) -> bool:
    """A run folder whose tables were written: `cells/` and `leaderboard.csv` (its last step)."""
    return (path / "cells").is_dir() and (path / "leaderboard.csv").is_file()


def latest_run(results: Path = RESULTS_DIR) -> Path:
    """The most recently modified finished run under `results/` (the default of `serve`)."""
    runs = (
        [p for p in results.iterdir() if p.is_dir() and is_finished_run(p)]
        if results.is_dir()
        else []
    )
    if not runs:
        raise UsageError(
            f"no finished run folder under {str(results)!r}; pass one: serve RUN_DIR (the --output "
            "of a run)"
        )
    return max(runs, key=lambda p: (p / "leaderboard.csv").stat().st_mtime)


def check_run(target: str | None) -> Path:
    """The run folder to serve, refused in one line when it is not a finished run."""
    if target is None:
        return latest_run()
    path = Path(target)
    if not path.is_dir():
        raise UsageError(f"serve: {target!r} is not a folder; pass a finished run folder")
    if not is_finished_run(path):
        raise UsageError(
            f"serve: {target!r} is not a finished run folder (no cells/ and leaderboard.csv); pass "
            "the --output of a run that has finished, or rebuild its tables with: report RUN_DIR"
        )
    return path


@dataclass
class ModelChoice:
    """One saved model the page can classify with."""

    key: str  # the saved file's stem (unique within `saved_models/`), `.litert-int8` for its export
    path: Path  # the saved .keras model (the LiteRT choice draws its Grad-CAM with it)
    record: CellRecord
    runtime: str = "keras"  # or "litert_int8" (`app.litert`)
    export: Path | None = None  # the .tflite file of a LiteRT choice
    profiled_ms: float | None = None  # latency per image measured when the run was profiled

    @property
    def runtime_label(self) -> str:
        return "LiteRT int8" if self.runtime != "keras" else "Keras float32"

    def summary(self) -> dict:
        val = self.record.split_metrics("val")
        test = self.record.split_metrics("test")
        return {
            "key": self.key,
            "cell_id": self.record.cell_id,
            "model": self.record.model,
            "alpha": self.record.alpha,
            "val_accuracy": val.get("accuracy"),
            "test_accuracy": test.get("accuracy"),
            "image_size": self.record.image_size,
            "modality": self.record.modality,
            "runtime": self.runtime_label,
            "profiled_ms": self.profiled_ms,
        }


def saved_choices(run_dir: Path) -> list[ModelChoice]:
    """Every saved model of the run whose cell finished, best on validation first.

    The first is the leaderboard's validation-best cell, as `predict RUN_DIR` picks it. Raises a
    UsageError when that cell's model was not saved (`--save-models none`, or deleted).
    """
    records = sorted((r for r in load_records(run_dir) if r.ok), key=validation_rank_key)[::-1]
    if not records:
        raise UsageError(
            f"serve: run folder {str(run_dir)!r} has no finished cells to predict with"
        )
    choices = []
    for record in records:
        found = saved_model_file(run_dir, record)
        if found is not None and found.is_file():
            choices.append(ModelChoice(found.stem, found, with_calibration(run_dir, record)))
    if not choices or choices[0].record.cell_id != records[0].cell_id:
        raise UsageError(
            f"serve: no saved model for the best cell ({records[0].cell_id}) in "
            f"{str(saved_models_dir(run_dir))!r}; train the run again into a new --output with "
            "--save-models best (the default) or all"
        )
    return choices


def unlike_threshold(run_dir: Path, record: CellRecord) -> tuple[float, str]:
    """The top-1 confidence under which a photo is called unlike the training data, and why.

    Taken from the cell's validation predictions, calibrated as the page shows probabilities, so a
    photo is flagged when the model is less sure of it than of all but 5 % of the run's own
    validation photos.
    """
    frame = load_predictions(run_dir, record)
    columns = [f"prob_{name}" for name in record.class_names]
    if frame is not None and set(columns) <= set(frame.columns):
        val = frame[frame["split"] == "val"]
        if len(val):
            confidence = shown_probabilities(record, val[columns].to_numpy(float)).max(axis=1)
            value = float(np.quantile(confidence, UNLIKE_QUANTILE))
            return value, (
                f"below {value:.2f}, the top-1 confidence of the least sure 5 % of this model's "
                f"{len(val)} validation photos"
            )
    value = min(1.0, FALLBACK_FACTOR / max(len(record.class_names), 1))
    return value, f"below {value:.2f} (twice chance; this cell saved no validation predictions)"


def _clean(value):
    """A table value as JSON can carry it (NaN and infinities become null)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value.item() if isinstance(value, np.generic) else value


def table(path: Path, columns: tuple[str, ...] | None = None) -> dict | None:
    """A CSV as `{"columns": [...], "rows": [[...]]}`, or None when the run did not write it."""
    if not path.is_file():
        return None
    frame = pd.read_csv(path)
    if columns is not None:
        frame = frame[[c for c in columns if c in frame.columns]]
    rows = [[_clean(v) for v in row] for row in frame.astype(object).itertuples(index=False)]
    return {"columns": list(frame.columns), "rows": rows}


def class_metrics(record: CellRecord) -> dict:
    """Per-class precision, recall, F1 and support, and the confusion matrix, per split."""
    splits = {}
    for split in ("val", "test"):
        metrics = record.split_metrics(split)
        if metrics.get("per_class"):
            splits[split] = {
                "accuracy": metrics.get("accuracy"),
                "macro_f1": metrics.get("macro_f1"),
                "per_class": metrics["per_class"],
                "confusion_matrix": metrics.get("confusion_matrix"),
            }
    return {"cell_id": record.cell_id, "class_names": record.class_names, "splits": splits}


def plot_files(run_dir: Path) -> list[str]:
    """The run's figures (relative paths under the run folder), the only files `/plots/` serves."""
    folder = run_dir / "plots"
    if not folder.is_dir():
        return []
    return sorted(str(p.relative_to(run_dir)) for p in folder.rglob("*.png"))


def run_summary(run_dir: Path, choices: list[ModelChoice]) -> dict:
    """What the page's result tabs show, read once at start-up (a finished run does not change)."""
    config = run_dir / "config.yaml"
    return {
        "run": str(run_dir),
        "name": run_dir.resolve().name,
        "models": [c.summary() for c in choices],
        "leaderboard": table(run_dir / "leaderboard.csv", BOARD_COLUMNS),
        "deployment": table(run_dir / "deployment.csv"),
        "plots": plot_files(run_dir),
        "has_report": (run_dir / "report.md").is_file(),
        "has_config": config.is_file(),
    }
