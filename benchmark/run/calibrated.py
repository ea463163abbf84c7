"""A cell's calibration, wherever its record came from, and the one path from raw probabilities to
what a user sees.

Records written since calibration was added carry it (`evaluation_record`); older ones are completed
here from their saved predictions, with the same function, so `report RUN_DIR` on an old run folder
shows the same columns a new run would. `shown_probabilities` is the single place a temperature is
applied for a user: `predict`, `explain` (and any later command that scores new images) call it, so
they cannot drift apart from each other or from the leaderboard.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.run.records import CellRecord, load_predictions
from benchmark.training.calibration import apply_temperature, calibration_summary


def calibration_from_predictions(run_dir: Path, record: CellRecord) -> dict[str, Any]:
    """`calibration_summary` of a cell's saved val/test probabilities.

    Empty without a usable predictions file.
    """
    frame = load_predictions(run_dir, record)
    columns = [f"prob_{name}" for name in record.class_names]
    if frame is None or not columns or not set(columns) <= set(frame.columns):
        return {}
    probabilities, labels = {}, {}
    for split in ("val", "test"):
        part = frame[frame["split"] == split]
        if len(part):
            probabilities[split] = part[columns].to_numpy(float)
            labels[split] = part["true"].to_numpy(int)
    return calibration_summary(probabilities, labels)


def with_calibration(run_dir: Path, record: CellRecord) -> CellRecord:
    """The record with its `calibration` filled in from its predictions when an older runner left
    it out.

    Nothing is written back: the record file stays as the run wrote it, and every reader gets the
    same figures.
    """
    if record.calibration or not record.ok:
        return record
    return dataclasses.replace(
        record, calibration=calibration_from_predictions(Path(run_dir), record)
    )


def temperature_of(record: CellRecord) -> float | None:
    """The temperature fitted on the cell's validation split, or None when it has none."""
    value = (record.calibration or {}).get("temperature")
    return float(value) if value is not None else None


def shown_probabilities(record: CellRecord, raw: np.ndarray) -> np.ndarray:
    """What a user is shown for a cell's model: its raw softmax divided by the cell's temperature,
    if it has one.

    `raw` is (n, classes) as the model (averaged over the cell's test-time views) outputs it. The
    order of the classes, and so the predicted label, is the same either way; only the stated
    confidence changes.
    """
    temperature = temperature_of(record)
    raw = np.asarray(raw, dtype=np.float64)
    return raw if temperature is None else apply_temperature(raw, temperature)
