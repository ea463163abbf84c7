"""Uncertainty for the leaderboard: bootstrap intervals, paired McNemar tests and Holm correction.

A TrashNet test split holds about 380 images, so an accuracy near 85 % is only known to about
+-3.6 points. These pure functions let the report say which differences between rows are real.
"""

from __future__ import annotations

import numpy as np
from scipy import stats
from sklearn.metrics import f1_score

METRICS = ("accuracy", "macro_f1")


def stratified_resample_indices(
    y_true: np.ndarray, rng: np.random.Generator, n_resamples: int = 1
) -> np.ndarray:
    """Bootstrap index rows of shape (n_resamples, len(y_true)), resampled within each true class.

    Each position is refilled from positions of its own class, so `y_true[rows] == y_true`: every
    resample keeps the class sizes of the real test split, and only the predictions vary.
    """
    y_true = np.asarray(y_true)
    rows = np.empty((n_resamples, len(y_true)), dtype=np.intp)
    for label in np.unique(y_true):
        positions = np.flatnonzero(y_true == label)
        rows[:, positions] = positions[
            rng.integers(0, len(positions), size=(n_resamples, len(positions)))
        ]
    return rows


def _macro_f1_rows(
    y_true: np.ndarray, pred_rows: np.ndarray, num_classes: int | None
) -> np.ndarray:
    """Macro F1 of every prediction row at once, matching sklearn's `f1_score(average="macro")`.

    Confusion counts come from one `bincount`, which is far faster than 1000 sklearn calls.
    Without `num_classes`, sklearn averages over labels present in the row (true or predicted).
    """
    n_rows, n = pred_rows.shape
    k = int(max(y_true.max(), pred_rows.max()) + 1) if num_classes is None else num_classes
    codes = (np.arange(n_rows)[:, None] * k + y_true[None, :]) * k + pred_rows
    confusion = np.bincount(codes.ravel(), minlength=n_rows * k * k).reshape(n_rows, k, k)
    tp = np.diagonal(confusion, axis1=1, axis2=2)
    true_counts, pred_counts = confusion.sum(axis=2), confusion.sum(axis=1)
    denominator = true_counts + pred_counts  # 2tp + fp + fn
    f1 = np.divide(2 * tp, denominator, out=np.zeros(tp.shape), where=denominator > 0)
    if num_classes is not None:
        return f1.mean(axis=1)
    present = denominator > 0
    return (f1 * present).sum(axis=1) / present.sum(axis=1)


def bootstrap_ci(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    metric: str = "accuracy",
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    num_classes: int | None = None,
) -> tuple[float, float]:
    """Seeded percentile interval of `metric` under a bootstrap stratified by true class.

    Stratifying keeps each resample's class mix equal to the split's, so the interval reflects
    prediction noise rather than class-proportion noise the fixed split does not have.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected 'accuracy' or 'macro_f1'")
    y_true, y_pred = np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)
    if y_true.shape != y_pred.shape or y_true.size == 0:
        raise ValueError(
            f"need equal, non-empty label arrays; got {y_true.shape} and {y_pred.shape}"
        )
    rows = stratified_resample_indices(y_true, np.random.default_rng(seed), n_resamples)
    if metric == "accuracy":
        values = (y_true == y_pred)[rows].mean(axis=1)
    else:
        values = _macro_f1_rows(y_true, y_pred[rows], num_classes)
    return percentile_interval(values, confidence)


def percentile_interval(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """The central `confidence` share of bootstrap values, as (low, high): the percentile
    interval."""
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(np.asarray(values, dtype=float), [tail, 1.0 - tail])
    return float(low), float(high)


def format_ci(low: float, high: float) -> str:
    """An interval as one table cell, e.g. "0.8123-0.8790"."""
    return f"{low:.4f}-{high:.4f}"


def mcnemar_from_counts(b: int, c: int) -> float:
    """Exact two-sided McNemar p-value from the two discordant counts.

    Only images where the models disagree carry evidence; under equal skill each disagreement
    favours either model with probability 1/2, so the test is a binomial test on them.
    """
    if b + c == 0:
        return 1.0
    return float(stats.binomtest(min(b, c), b + c, 0.5, alternative="two-sided").pvalue)


def mcnemar_exact(correct_a: np.ndarray, correct_b: np.ndarray) -> float:
    """Exact McNemar p-value for two models' per-image correctness on the same test images."""
    correct_a, correct_b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if correct_a.shape != correct_b.shape:
        raise ValueError(f"paired arrays differ in shape: {correct_a.shape} vs {correct_b.shape}")
    b = int(np.sum(correct_a & ~correct_b))
    c = int(np.sum(~correct_a & correct_b))
    return mcnemar_from_counts(b, c)


def holm_adjust(pvalues: np.ndarray) -> np.ndarray:
    """Holm-Bonferroni step-down adjusted p-values; NaN entries stay NaN and do not count in m.

    Holm controls the family-wise error rate like Bonferroni but rejects more, and needs no
    independence between tests (our comparisons all share the best row).
    """
    pvalues = np.asarray(pvalues, dtype=float)
    adjusted = np.full(pvalues.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(pvalues))
    order = valid[np.argsort(pvalues[valid], kind="stable")]
    m = len(order)
    scaled = (m - np.arange(m)) * pvalues[order]
    adjusted[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return adjusted


def t_interval(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float, float]:
    """(mean, std with ddof=1, low, high) of a Student-t interval for the mean over seeds.

    With fewer than two values there is no spread to estimate, so std and the bounds are NaN.
    """
    values = np.asarray(values, dtype=float)
    mean = float(values.mean()) if values.size else float("nan")
    if values.size < 2:
        return mean, float("nan"), float("nan"), float("nan")
    std = float(values.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2.0, values.size - 1)) * std / np.sqrt(values.size)
    return mean, std, mean - half, mean + half


def compare_to_best(
    correct_by_row: list[np.ndarray | None], best_index: int, alpha_level: float = 0.05
) -> list[tuple[float, bool]]:
    """(Holm-adjusted McNemar p vs the best row, tied_with_best) for every leaderboard row.

    The best row gets (1.0, True). Rows without predictions (failed cells) get (nan, False) and
    stay out of the Holm family, so a failure does not weaken the other comparisons.
    """
    best = correct_by_row[best_index]
    if best is None:
        raise ValueError(f"best row {best_index} has no predictions to compare against")
    raw = np.array(
        [
            np.nan if i == best_index or row is None else mcnemar_exact(best, row)
            for i, row in enumerate(correct_by_row)
        ]
    )
    adjusted = holm_adjust(raw)
    adjusted[best_index] = 1.0
    return [(float(p), bool(p >= alpha_level)) for p in adjusted]


def worst_class_f1(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> tuple[int, float]:
    """(index, F1) of the class with the lowest F1; ties go to the first class in order."""
    f1 = f1_score(y_true, y_pred, labels=list(range(num_classes)), average=None, zero_division=0)
    worst = int(np.argmin(f1))
    return worst, float(f1[worst])
