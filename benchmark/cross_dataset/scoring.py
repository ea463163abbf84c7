"""Scores against a label map, where one of DATA's classes may accept several of the run's classes.

A prediction is right when it lies in the image's *target set* (the run classes its DATA class maps
to): a `paper_and_cardboard` photo predicted `paper` or `cardboard` is right. That fixes accuracy
and each DATA class's recall. Macro-F1 needs "predicted as class d" too, and here it is read the
same way, one DATA class at a time: an image is predicted as `d` when its prediction lies in `d`'s
target set. So for each DATA class `d`:

- TP: images of `d` predicted inside `d`'s set; FN: images of `d` predicted outside it;
- FP: images of other DATA classes predicted inside `d`'s set.

F1 of `d` is `2 TP / (2 TP + FP + FN)` and macro-F1 their mean over DATA's scored classes. With a
one-to-one map this is exactly scikit-learn's macro-F1 over the mapped classes (a prediction of a
run class no DATA class maps to is only a miss). When two DATA classes share a run class (`bottles`
and `bags` both -> `plastic`), a `plastic` prediction is a "yes" for both, so each one's precision
counts the other's images: the model cannot tell them apart, and F1 says so; accuracy and recall
are unaffected. Intervals are the suite's stratified bootstrap (`benchmark.results.stats`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmark.cross_dataset.label_map import LabelMap
from benchmark.results.stats import percentile_interval, stratified_resample_indices

RESAMPLES_PER_BLOCK = 100  # bounds the resample-weight matrix at 100 x images floats


def target_matrix(label_map: LabelMap, run_classes: list[str]) -> np.ndarray:
    """Boolean (DATA classes x run classes): entry [d, r] says a prediction of r is right for DATA
    class d."""
    matrix = np.zeros((len(label_map.targets), len(run_classes)), dtype=bool)
    for row, targets in enumerate(label_map.targets.values()):
        matrix[row, [run_classes.index(t) for t in targets]] = True
    return matrix


def set_target_counts(
    true: np.ndarray, pred: np.ndarray, targets: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(TP, FP, FN) per DATA class for each row of `weights` (how often each image counts), as
    defined above.

    Shapes: `true`, `pred` (n,), `targets` (D, R), `weights` (rows, n) -> three (rows, D) arrays.
    """
    truth = np.eye(targets.shape[0], dtype=bool)[true]  # (n, D)
    inside = targets[:, pred].T  # (n, D): the prediction lies in class d's target set
    tp = weights @ (truth & inside)
    fp = weights @ (~truth & inside)
    fn = weights @ (truth & ~inside)
    return tp, fp, fn


def _f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    denominator = 2 * tp + fp + fn
    return np.divide(2 * tp, denominator, out=np.zeros(np.shape(tp)), where=denominator > 0)


@dataclass
class SetTargetScore:
    """Accuracy, macro-F1 (with bootstrap intervals), per-class figures and the confusion counts of
    one model.

    `confusion` has DATA's scored classes as rows and the run's classes as columns; `per_class`
    maps each DATA class to its recall, precision, F1 and number of images.
    """

    images: int
    accuracy: float
    accuracy_ci: tuple[float, float]
    macro_f1: float
    macro_f1_ci: tuple[float, float]
    per_class: dict[str, dict[str, Any]]
    confusion: list[list[int]]


def score_predictions(
    true: np.ndarray,
    pred: np.ndarray,
    targets: np.ndarray,
    data_classes: list[str],
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> SetTargetScore:
    """Scores run-class predictions `pred` of images whose DATA classes are `true` (indices into
    `data_classes`).

    The bootstrap resamples images within each DATA class (seeded), as the leaderboard's intervals
    do.
    """
    true, pred = np.asarray(true, dtype=int), np.asarray(pred, dtype=int)
    if true.shape != pred.shape or true.size == 0:
        raise ValueError(f"need equal, non-empty label arrays; got {true.shape} and {pred.shape}")
    correct = targets[true, pred]
    tp, fp, fn = (
        counts[0] for counts in set_target_counts(true, pred, targets, np.ones((1, true.size)))
    )
    f1 = _f1(tp, fp, fn)
    rng = np.random.default_rng(seed)
    accuracies, macro_f1s = [], []
    for start in range(0, n_resamples, RESAMPLES_PER_BLOCK):
        rows = stratified_resample_indices(true, rng, min(RESAMPLES_PER_BLOCK, n_resamples - start))
        weights = np.stack([np.bincount(row, minlength=true.size) for row in rows]).astype(float)
        accuracies.append(weights @ correct / true.size)
        macro_f1s.append(_f1(*set_target_counts(true, pred, targets, weights)).mean(axis=1))
    confusion = np.zeros((targets.shape[0], targets.shape[1]), dtype=int)
    np.add.at(confusion, (true, pred), 1)
    support = tp + fn
    per_class = {
        name: {
            "recall": float(tp[d] / support[d]) if support[d] else float("nan"),
            "precision": float(tp[d] / (tp[d] + fp[d])) if tp[d] + fp[d] else 0.0,
            "f1": float(f1[d]),
            "support": int(support[d]),
        }
        for d, name in enumerate(data_classes)
    }
    return SetTargetScore(
        images=int(true.size),
        accuracy=float(correct.mean()),
        accuracy_ci=percentile_interval(np.concatenate(accuracies), confidence),
        macro_f1=float(f1.mean()),
        macro_f1_ci=percentile_interval(np.concatenate(macro_f1s), confidence),
        per_class=per_class,
        confusion=confusion.tolist(),
    )
