"""Corruption robustness with test-time augmentation (`robustness RUN --tta N`).

Test-time augmentation is the remedy a user can add to a model already deployed: each photo is
also shown mirrored and slightly zoomed (`data_pipeline.tta`, the views `--tta` averages while a
cell trains), and the softmax is averaged over the views. Whether that helps a noisy, blurred or
dim photo as much as a clean one is what this pass measures: every image set of `run.robustness`
(the clean images and each corruption at its rotated severities, the same images and severities
as the plain rows) is scored with the first N views averaged. Nothing is retrained and the model is
not changed.

Rows go to `robustness/tta/<cell_id>.csv` and `robustness_tta.csv` (the plain rows' columns) and
the leaderboard's `tta_clean_accuracy` / `tta_corrupt_accuracy`. One view count is kept per run
folder (`robustness/tta/VIEWS`): rows scored with different counts are never mixed in one mean.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmark.errors import UsageError
from benchmark.run.robustness import (
    PER_CLASS,
    PREDICT_BATCH,
    TTA,
    RobustnessRow,
    ScoredModel,
    array_inputs,
    image_sets,
    parts_dir,
    point_rows,
    scored_sets,
)
from data_pipeline import SplitTable
from data_pipeline.tta_views import MAX_VIEWS

VIEWS_FILE = "VIEWS"  # in robustness/tta/: the view count its rows were scored with


def check_views(views: int) -> int:
    """`views` if it is a view count that differs from the plain pass (2 to `MAX_VIEWS`)."""
    if isinstance(views, bool) or not isinstance(views, int) or not 2 <= views <= MAX_VIEWS:
        raise UsageError(
            f"--tta must be 2 to {MAX_VIEWS} test-time views for robustness, got {views!r} "
            "(one view is the plain pass robustness.csv already holds)"
        )
    return views


def stored_views(run_dir: Path) -> int | None:
    """The view count the run folder's TTA rows were scored with; None when it has none."""
    path = parts_dir(run_dir, TTA) / VIEWS_FILE
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def claim_views(run_dir: Path, views: int, force: bool) -> None:
    """Makes `robustness/tta/` hold rows of `views` views only: refuses, before anything is
    scored, a count other than the stored one unless `force`, in which case the old rows go."""
    folder = parts_dir(run_dir, TTA)
    stored = stored_views(run_dir)
    parts = sorted(folder.glob("*.csv")) if folder.is_dir() else []
    if stored not in (None, views) and parts:
        if not force:
            raise UsageError(
                f"{folder} holds rows scored with --tta {stored}; pass --tta {stored} to add "
                f"cells, or --force to score every cell again with {views} views"
            )
        for part in parts:
            part.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / VIEWS_FILE).write_text(f"{views}\n")


def averaged_probabilities(scored: ScoredModel, images: np.ndarray, views: int) -> np.ndarray:
    """The model's softmax on `images` (0..255) averaged over test-time views 0..views-1, each
    view made before the model's own preprocessing (`array_inputs`), as a cell's `--tta` makes
    them."""
    total = None
    for view in range(views):
        inputs = array_inputs(scored, images, view)
        probabilities = np.asarray(
            scored.model.predict(inputs, batch_size=PREDICT_BATCH, verbose=0)
        )
        total = probabilities if total is None else total + probabilities
    return total / views


def score_models_tta(
    models: list[ScoredModel],
    split: SplitTable,
    image_size: int,
    per_class: int = PER_CLASS,
    *,
    views: int,
) -> dict[str, list[RobustnessRow]]:
    """Rows per cell id, each image set scored with the softmax averaged over `views` views."""
    sets, truth = scored_sets(split, image_size, per_class)
    rows: dict[str, list[RobustnessRow]] = {m.cell_id: [] for m in models}
    for name in image_sets():
        images = sets.images(name)
        for scored in models:
            if len(truth):
                predicted = np.argmax(averaged_probabilities(scored, images, views), axis=1)
            else:
                predicted = np.zeros(0, int)
            rows[scored.cell_id].extend(point_rows(scored, name, sets, truth, predicted))
    return rows
