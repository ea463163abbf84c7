"""Late fusion: combine a trained image model's and a trained text model's probabilities.

Two rules, both computed from the component cells' saved predictions, so no network is trained:
(a) confidence-based selection, per sample the prediction of the model that is more sure of
itself (ties go to the image model); (b) a weighted average of the two probability vectors, with
the image weight chosen on the validation split (never on test).
"""
from __future__ import annotations

import numpy as np

WEIGHT_GRID = np.round(np.linspace(0.0, 1.0, 21), 2)


def confidence_selection(image_probs: np.ndarray, text_probs: np.ndarray) -> np.ndarray:
    """Per row, the probability vector of whichever model has the higher top probability."""
    take_image = image_probs.max(axis=1) >= text_probs.max(axis=1)
    return np.where(take_image[:, None], image_probs, text_probs)


def weighted_average(image_probs: np.ndarray, text_probs: np.ndarray, image_weight: float) -> np.ndarray:
    return image_weight * image_probs + (1.0 - image_weight) * text_probs


def choose_image_weight(image_probs: np.ndarray, text_probs: np.ndarray, y_true: np.ndarray) -> float:
    """The image weight on WEIGHT_GRID with the best validation accuracy (ties: closest to 0.5)."""
    scores = [np.mean(weighted_average(image_probs, text_probs, w).argmax(1) == y_true) for w in WEIGHT_GRID]
    best = max(scores)
    candidates = [w for w, s in zip(WEIGHT_GRID, scores) if s == best]
    return float(min(candidates, key=lambda w: abs(w - 0.5)))
