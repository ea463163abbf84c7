"""Late fusion: combine a trained image model's and a trained text model's probabilities.

Two rules, both computed from the component cells' saved predictions, so no network is trained:
(a) confidence-based selection, per sample the prediction of the model that is more sure of
itself (ties go to the image model); (b) a weighted average of the two probability vectors, with
the image weight chosen on the validation split (never on test).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from benchmark.run.cell_key import CellKey
from benchmark.run.evaluation import evaluation_record
from benchmark.run.folder import RunContext
from benchmark.run.grid import Cell
from benchmark.run.records import CellRecord, predictions_path, write_record

WEIGHT_GRID = np.round(np.linspace(0.0, 1.0, 21), 2)


def confidence_selection(image_probs: np.ndarray, text_probs: np.ndarray) -> np.ndarray:
    """Per row, the probability vector of whichever model has the higher top probability."""
    take_image = image_probs.max(axis=1) >= text_probs.max(axis=1)
    return np.where(take_image[:, None], image_probs, text_probs)


def weighted_average(
    image_probs: np.ndarray, text_probs: np.ndarray, image_weight: float
) -> np.ndarray:
    return image_weight * image_probs + (1.0 - image_weight) * text_probs


def choose_image_weight(
    image_probs: np.ndarray, text_probs: np.ndarray, y_true: np.ndarray
) -> float:
    """The image weight on WEIGHT_GRID with the best validation accuracy (ties: closest to 0.5)."""
    scores = [
        np.mean(weighted_average(image_probs, text_probs, w).argmax(1) == y_true)
        for w in WEIGHT_GRID
    ]
    best = max(scores)
    candidates = [w for w, s in zip(WEIGHT_GRID, scores) if s == best]
    return float(min(candidates, key=lambda w: abs(w - 0.5)))


def run_late_fusion_cell(ctx: RunContext, cell: Cell) -> CellRecord:
    """Combines the component cells' saved probabilities (same alpha, seed and fold) by both
    late-fusion rules.

    Returns the weighted-average row; the confidence-selection row is written beside it as its own
    record.
    """
    components = ctx.plan(cell.model).components
    component_probs = []
    for component in components:
        component_id = CellKey(component, cell.alpha, cell.seed, cell.fold).cell_id
        path = predictions_path(ctx.run_dir, component_id)
        if not path.is_file():
            raise RuntimeError(f"component cell {component_id} has no predictions (did it fail?)")
        frame = pd.read_csv(path)
        component_probs.append(
            {
                part: frame[frame["split"] == part][
                    [f"prob_{c}" for c in ctx.split.class_names]
                ].to_numpy()
                for part in ("val", "test")
            }
        )
    image, text = component_probs
    weight = choose_image_weight(image["val"], text["val"], ctx.split.label_indices("val"))
    # The image component's saved probabilities are averaged over its test-time views when TTA is
    # on: say so.
    tta = ctx.config.tta
    record = evaluation_record(
        ctx,
        cell,
        {p: weighted_average(image[p], text[p], weight) for p in image if len(image[p])},
        tta=tta,
    )
    record = dataclasses.replace(
        record,
        weights=f"image weight {weight:g} (chosen on val)",
        late_fusion_rule="weighted_average",
        image_weight=weight,
        components=list(components),
    )
    confidence = evaluation_record(
        ctx,
        cell,
        {p: confidence_selection(image[p], text[p]) for p in image if len(image[p])},
        variant="confidence",
        tta=tta,
    )
    confidence = dataclasses.replace(
        confidence,
        weights="more confident model per sample",
        late_fusion_rule="confidence_selection",
        components=list(components),
    )
    write_record(ctx.run_dir, confidence)
    return record
