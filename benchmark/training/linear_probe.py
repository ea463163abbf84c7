"""The linear probe: a logistic regression on a frozen pretrained backbone's pooled features.

Transfer papers report it beside fine-tuning because it is the floor a recipe must clear: what the
ImageNet features already separate with one linear layer, no augmentation, no fine-tuning and no
head of our own. A fine-tuned cell that does not beat its own backbone's probe on validation
spent its training for nothing (or its recipe hurt).

The features are standardised (mean and scale from the training split only), then scikit-learn's
multinomial `LogisticRegression` is fitted on the training split once per point of a small grid:
inverse regularisation `C` x class weighting (none or balanced). The point with the best
validation accuracy (ties: validation macro-F1, then the stronger regularisation, then no
weighting) is kept and scored on validation and test. The test split never chooses anything: it is
scored once, with the point validation picked. Its validation figure is the best of the grid, so
slightly optimistic, as every cell's best-epoch validation score is.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.preprocessing import StandardScaler

from benchmark.training.metrics import classification_metrics

# Inverse L2 strength on standardised features: from heavy regularisation (1280 features, a few
# hundred images per class) to almost none.
PROBE_C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0)
PROBE_CLASS_WEIGHTS = ("none", "balanced")
MAX_ITER = 2000


@dataclass
class ProbeFit:
    """The chosen point of the grid, its metrics per split, and every point's validation score."""

    C: float
    class_weight: str  # "none" or "balanced"
    metrics: dict[str, dict[str, Any]]  # split -> `classification_metrics`
    grid: list[dict[str, Any]] = field(default_factory=list)  # C, class_weight, val acc, val f1
    seconds: float = 0.0


def fit_probe(
    features: dict[str, np.ndarray],
    labels: dict[str, np.ndarray],
    class_names: list[str],
    *,
    c_grid: tuple[float, ...] = PROBE_C_GRID,
    class_weights: tuple[str, ...] = PROBE_CLASS_WEIGHTS,
) -> ProbeFit:
    """Fits the grid on `features["train"]`, chooses on `features["val"]`, then scores every split
    given (`test` among them, once, with the chosen point)."""
    started = time.perf_counter()
    features = {part: np.asarray(x, dtype=np.float64) for part, x in features.items()}
    scaler = StandardScaler().fit(features["train"])
    scaled = {part: scaler.transform(x) for part, x in features.items()}
    labels = {part: np.asarray(y, dtype=int) for part, y in labels.items()}
    classes = np.arange(len(class_names))
    grid, best, best_key = [], None, None
    for c_value in sorted(c_grid):  # stronger regularisation first: it wins ties
        for weighting in class_weights:
            model = _fit(scaled["train"], labels["train"], c_value, weighting)
            predicted = model.predict(scaled["val"])
            accuracy = float(np.mean(predicted == labels["val"]))
            macro_f1 = float(
                f1_score(labels["val"], predicted, labels=classes, average="macro", zero_division=0)
            )
            point = dict(C=c_value, class_weight=weighting, val_accuracy=accuracy)
            grid.append({**point, "val_macro_f1": macro_f1})
            if best_key is None or (accuracy, macro_f1) > best_key:
                best, best_key = (c_value, weighting, model), (accuracy, macro_f1)
    c_value, weighting, model = best
    metrics = {
        part: classification_metrics(
            labels[part], _probabilities(model, scaled[part], len(class_names)), class_names
        )
        for part in scaled
        if part != "train" and len(scaled[part])
    }
    return ProbeFit(c_value, weighting, metrics, grid, time.perf_counter() - started)


def _fit(x: np.ndarray, y: np.ndarray, c_value: float, weighting: str) -> LogisticRegression:
    model = LogisticRegression(
        C=c_value,
        class_weight="balanced" if weighting == "balanced" else None,
        max_iter=MAX_ITER,
    )
    with warnings.catch_warnings():  # a weakly regularised fit may stop short: it is still scored
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(x, y)


def _probabilities(model: LogisticRegression, x: np.ndarray, num_classes: int) -> np.ndarray:
    """Probabilities over every class, also those absent from the training split."""
    full = np.zeros((len(x), num_classes))
    full[:, model.classes_] = model.predict_proba(x)
    return full
