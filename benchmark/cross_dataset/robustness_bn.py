"""Corruption robustness after test-time BatchNorm adaptation (`robustness RUN --adapt-bn`).

The remedy `evaluate --adapt-bn` applies to another data set, applied to each corrupted set: a
camera that adds noise, blur or a colour cast adds it to every photo it takes, so its unlabelled
photos tell the network how its BatchNorm inputs moved (Schneider et al. 2020 measured large gains
on ImageNet-C this way). For each scored model and each image set of `run.robustness` (the clean
images, then each corruption with its images at their rotated severities 1-5), the model's
BatchNorm statistics are re-estimated on that set's images alone (`adapt_batch_norm`, no label
read, no gradient step), the same images are predicted, and the saved statistics are put back
before the next set: every set is scored by the model adapted to it and to nothing else.

The clean row matters as much as the corrupted ones: a model fine-tuned with its BatchNorm layers
frozen learnt its head on the statistics it was pretrained with, and swapping them for the target
set's can cost accuracy on photos that were never shifted. Rows go to
`robustness/bn_adapted/<cell_id>.csv` and `robustness_bn.csv` (the plain rows' columns), and the
leaderboard's `bn_clean_accuracy` / `bn_corrupt_accuracy`.
"""

from __future__ import annotations

import numpy as np

from benchmark.cross_dataset.adapt_bn import adapt_batch_norm, restore_statistics, statistics
from benchmark.run.robustness import (
    PER_CLASS,
    RobustnessRow,
    ScoredModel,
    image_sets,
    point_rows,
    predicted_labels,
    scored_sets,
)
from data_pipeline import SplitTable
from models import preprocess_function

ADAPT_BATCH = 32  # images per statistics batch, as `evaluate --adapt-bn` feeds them


def adapted_labels(scored: ScoredModel, images: np.ndarray) -> np.ndarray:
    """The model's class per image after its BatchNorm statistics were re-estimated on `images`
    (fed with the model's own preprocessing, as `predicted_labels` feeds them)."""
    import tensorflow as tf

    preprocess = preprocess_function(scored.preprocess)

    def batches():
        for start in range(0, len(images), ADAPT_BATCH):
            chunk = tf.constant(images[start : start + ADAPT_BATCH], tf.float32)
            yield chunk if preprocess is None else preprocess(chunk)

    adapt_batch_norm(scored.model, batches())
    return predicted_labels(scored, images)


def score_models_adapted(
    models: list[ScoredModel], split: SplitTable, image_size: int, per_class: int = PER_CLASS
) -> dict[str, list[RobustnessRow]]:
    """Rows per cell id, each image set scored by the model adapted to that set; the models are
    left with the statistics they had."""
    sets, truth = scored_sets(split, image_size, per_class)
    rows: dict[str, list[RobustnessRow]] = {m.cell_id: [] for m in models}
    for scored in models:
        saved = statistics(scored.model)
        try:
            for name in image_sets():
                images = sets.images(name)
                predicted = adapted_labels(scored, images) if len(truth) else np.zeros(0, int)
                rows[scored.cell_id].extend(point_rows(scored, name, sets, truth, predicted))
        finally:
            restore_statistics(scored.model, saved)
    return rows
