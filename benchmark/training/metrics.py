"""Metrics of a trained model on one split, computed with scikit-learn from its predictions."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support


def predict_probabilities(model, dataset) -> np.ndarray:
    """Class probabilities for every element of an unshuffled dataset, in its order."""
    return np.asarray(model.predict(dataset, verbose=0), dtype=np.float64)


def classification_metrics(
    y_true: np.ndarray, probabilities: np.ndarray, class_names: list[str]
) -> dict:
    """Accuracy, cross-entropy, macro/weighted P/R/F1, per-class P/R/F1/support, confusion matrix,
    worst class.

    The confusion matrix has true classes as rows and predicted classes as columns, in
    `class_names` order; the worst class is the one with the lowest F1 (ties: first in order).
    """
    y_true = np.asarray(y_true, dtype=int)
    y_pred = probabilities.argmax(axis=1)
    labels = list(range(len(class_names)))
    eps = 1e-7
    loss = (
        float(-np.mean(np.log(np.clip(probabilities[np.arange(len(y_true)), y_true], eps, 1.0))))
        if len(y_true)
        else float("nan")
    )
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    metrics = {
        "accuracy": float(np.mean(y_true == y_pred)) if len(y_true) else float("nan"),
        "loss": loss,
        "count": int(len(y_true)),
    }
    for average in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=labels, average=average, zero_division=0
        )
        metrics.update(
            {
                f"{average}_precision": float(p),
                f"{average}_recall": float(r),
                f"{average}_f1": float(f),
            }
        )
    metrics["per_class"] = {
        name: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(class_names)
    }
    metrics["confusion_matrix"] = confusion_matrix(y_true, y_pred, labels=labels).tolist()
    worst = int(np.argmin(f1))
    metrics["worst_class"] = class_names[worst]
    metrics["worst_class_f1"] = float(f1[worst])
    return metrics
