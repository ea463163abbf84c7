"""Corruption robustness after test-time BatchNorm adaptation (`robustness RUN --adapt-bn`).

The remedy `evaluate --adapt-bn` applies to another data set, applied to each corrupted set: a
camera that adds noise, blur or a colour cast adds it to every photo it takes, so its unlabelled
photos tell the network how its BatchNorm inputs moved (Schneider et al. 2020 measured large gains
on ImageNet-C this way). For each scored model, the BatchNorm statistics of clean training images
of its split are measured once (`reference_images`); then for each image set of `run.robustness`
(the clean images; each corruption's images at each of their rotated severities 1-5, one group
per severity, as Schneider et al. adapt per corruption and severity: one camera, one level of its
defect) the statistics are shifted by how that group's differ from them (`shift_batch_norm`: no
label read, no gradient step), the same images are predicted, and the saved statistics are put
back before the next group: every group is scored by the model adapted to it and to nothing else.

Shifted, not reset: a model fine-tuned with its BatchNorm layers frozen learnt its head on the
statistics it was pretrained with, and resetting them to a set's own cost clean accuracy
(docs/shift-robustness.md). Rows go to `robustness/bn_adapted/<cell_id>.csv` and
`robustness_bn.csv` (the plain rows' columns), and the leaderboard's `bn_clean_accuracy` /
`bn_corrupt_accuracy`.
"""

from __future__ import annotations

import numpy as np

from benchmark.cross_dataset.adapt_bn import (
    reference_rows,
    reference_statistics,
    restore_statistics,
    shift_batch_norm,
    statistics,
)
from benchmark.run.robustness import (
    CLEAN,
    PER_CLASS,
    RobustnessRow,
    ScoredModel,
    array_inputs,
    image_sets,
    point_rows,
    predicted_labels,
    scored_sets,
)
from data_pipeline import SplitTable, make_prediction_batch

ADAPT_BATCH = 32  # images per statistics batch, as `evaluate --adapt-bn` feeds them


def model_batches(scored: ScoredModel, images: np.ndarray):
    """`images` in `ADAPT_BATCH`-image batches, fed as `predicted_labels` feeds them."""
    for start in range(0, len(images), ADAPT_BATCH):
        yield array_inputs(scored, images[start : start + ADAPT_BATCH])


def reference_images(split: SplitTable, image_size: int) -> np.ndarray:
    """The split's reference training images (`adapt_bn.reference_rows`), clean, at the scored
    size: the source photos each set's statistics are measured against."""
    return make_prediction_batch(list(reference_rows(split)["path"]), int(image_size))


def adapted_labels(scored: ScoredModel, images: np.ndarray, reference) -> np.ndarray:
    """The model's class per image after its BatchNorm statistics were shifted by how `images`
    differ from the reference (`shift_batch_norm`)."""
    shift_batch_norm(scored.model, model_batches(scored, images), reference)
    return predicted_labels(scored, images)


def adaptation_groups(sets, name: str, count: int) -> list[np.ndarray]:
    """The image indices each adaptation sees together: all images for the clean set, and for a
    corruption the images at each severity apart (one camera, one level of its defect)."""
    if name == CLEAN:
        return [np.arange(count)] if count else []
    column = sets.severity_column(name)
    return [np.flatnonzero(column == level) for level in np.unique(column)]


def score_models_adapted(
    models: list[ScoredModel], split: SplitTable, image_size: int, per_class: int = PER_CLASS
) -> dict[str, list[RobustnessRow]]:
    """Rows per cell id, each image set scored by the model adapted to that set; the models are
    left with the statistics they had."""
    sets, truth = scored_sets(split, image_size, per_class)
    source = reference_images(split, image_size)
    rows: dict[str, list[RobustnessRow]] = {m.cell_id: [] for m in models}
    for scored in models:
        saved = statistics(scored.model)
        try:
            reference = reference_statistics(scored.model, model_batches(scored, source))
            for name in image_sets():
                images = sets.images(name)
                predicted = np.zeros(len(truth), int)
                for at in adaptation_groups(sets, name, len(truth)):
                    predicted[at] = adapted_labels(scored, images[at], reference)
                    restore_statistics(scored.model, saved)  # the next group starts afresh
                rows[scored.cell_id].extend(point_rows(scored, name, sets, truth, predicted))
        finally:
            restore_statistics(scored.model, saved)
    return rows
