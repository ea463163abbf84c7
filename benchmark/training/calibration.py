"""How far a model's probabilities can be taken at their word, and one scalar that makes them more
honest.

Accuracy says how often the top class is right; calibration says whether a stated 0.9 is right nine
times in ten. A recycling line that routes uncertain items to a human needs the second. Everything
here works from saved class probabilities (no model, no retraining), so `report RUN_DIR` can compute
it for any old run from its predictions files.

Definitions (n images, K classes, p_i the probability vector of image i, y_i its true class):

- Confidence c_i = max_k p_ik; correct_i = [argmax_k p_ik == y_i].
- ECE (expected calibration error, Guo et al. 2017): the confidences are put in `BINS` = 15
  equal-width bins over [0, 1], bin m holding (m-1)/15 < c <= m/15 (a confidence of exactly 0 goes
  to the first bin). ECE = sum over non-empty bins of |B_m| / n * |accuracy(B_m) - mean
  confidence(B_m)|. 0 is perfectly calibrated; an overconfident model has confidence above accuracy.
- Brier score: the multi-class form of Brier (1950), mean over images of the SUM over classes of
  (p_ik - [k == y_i])^2. It lies in [0, 2] (not divided by K, unlike scikit-learn's binary score).
- NLL: mean over images of -log p_{i, y_i} (probabilities floored at `FLOOR`).
- Temperature scaling (Guo et al. 2017): logits z = log p (a softmax's logits up to a constant per
  image, which softmax ignores), calibrated p' = softmax(z / T) with one T > 0 fitted on the
  validation split by minimising its NLL. Dividing every logit of an image by the same T > 0 keeps
  their order, so the predicted class, and with it accuracy and F1, never changes.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

BINS = 15
FLOOR = 1e-30  # log(0) guard: a float32 softmax can underflow to exactly 0 for hopeless classes
# T is searched on log T within these bounds: 100x sharper to 100x flatter than the model's own
# output.
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.01, 100.0


def _labels(probabilities: np.ndarray, labels) -> tuple[np.ndarray, np.ndarray]:
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels, dtype=int)
    if probabilities.ndim != 2 or len(probabilities) != len(labels):
        raise ValueError(
            f"probabilities of shape {probabilities.shape} do not match {len(labels)} labels"
        )
    return probabilities, labels


def reliability_bins(probabilities: np.ndarray, labels, bins: int = BINS) -> dict[str, np.ndarray]:
    """Per equal-width confidence bin: its edges, image count, accuracy and mean confidence (nan
    when empty)."""
    probabilities, labels = _labels(probabilities, labels)
    confidence = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == labels).astype(float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    # Right-inclusive bins, (lower, upper], as Guo et al.'s reference code compares; c = 0 joins the
    # first bin.
    index = np.searchsorted(edges[1:-1], confidence, side="left")
    count = np.bincount(index, minlength=bins).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.bincount(index, weights=correct, minlength=bins) / count
        mean_confidence = np.bincount(index, weights=confidence, minlength=bins) / count
    return {"edges": edges, "count": count, "accuracy": accuracy, "confidence": mean_confidence}


def expected_calibration_error(probabilities: np.ndarray, labels, bins: int = BINS) -> float:
    """ECE over `bins` equal-width confidence bins (see the module docstring); nan for no images."""
    table = reliability_bins(probabilities, labels, bins)
    total = table["count"].sum()
    if total == 0:
        return float("nan")
    filled = table["count"] > 0
    gaps = np.abs(table["accuracy"][filled] - table["confidence"][filled])
    return float(np.sum(table["count"][filled] / total * gaps))


def brier_score(probabilities: np.ndarray, labels) -> float:
    """Mean over images of the summed squared error against the one-hot truth, in [0, 2]; nan for no
    images."""
    probabilities, labels = _labels(probabilities, labels)
    if not len(labels):
        return float("nan")
    onehot = np.eye(probabilities.shape[1])[labels]
    return float(np.mean(np.sum((probabilities - onehot) ** 2, axis=1)))


def negative_log_likelihood(probabilities: np.ndarray, labels) -> float:
    """Mean -log p(true class), probabilities floored at `FLOOR`; nan for no images."""
    probabilities, labels = _labels(probabilities, labels)
    if not len(labels):
        return float("nan")
    return float(-np.mean(np.log(np.maximum(probabilities[np.arange(len(labels)), labels], FLOOR))))


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log p / T), row by row: T > 1 flattens (less confident), T < 1 sharpens; argmax never
    changes."""
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    logits = np.log(np.maximum(np.asarray(probabilities, dtype=np.float64), FLOOR)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    scaled = np.exp(logits)
    return scaled / scaled.sum(axis=1, keepdims=True)


def fit_temperature(probabilities: np.ndarray, labels) -> float:
    """The T in [MIN_TEMPERATURE, MAX_TEMPERATURE] that minimises the NLL of
    `apply_temperature(p, T)`.

    The NLL is convex in 1/T (a log-sum-exp of terms linear in 1/T minus a linear term), so it has a
    single minimum and a bounded Brent search on log T finds it; a model whose every validation
    answer is right and sure keeps improving as T shrinks and stops at the lower bound. Returns 1.0
    (no change) for no images.
    """
    from scipy.optimize import minimize_scalar

    probabilities, labels = _labels(probabilities, labels)
    if not len(labels):
        return 1.0
    logits = np.log(np.maximum(probabilities, FLOOR))
    logits -= logits.max(axis=1, keepdims=True)
    rows = np.arange(len(labels))

    def nll(log_temperature: float) -> float:
        scaled = logits / math.exp(log_temperature)
        top = scaled.max(axis=1)
        log_norm = top + np.log(np.exp(scaled - top[:, None]).sum(axis=1))
        return float(np.mean(log_norm - scaled[rows, labels]))

    found = minimize_scalar(
        nll,
        bounds=(math.log(MIN_TEMPERATURE), math.log(MAX_TEMPERATURE)),
        method="bounded",
        options={"xatol": 1e-6},
    )
    return float(math.exp(found.x))


@dataclass
class SplitCalibration:
    """Calibration figures of one split, before and after dividing the logits by the fitted
    temperature."""

    ece: float
    brier: float
    nll: float
    ece_scaled: float
    brier_scaled: float
    nll_scaled: float


def calibration_summary(
    probabilities: dict[str, np.ndarray], labels: dict[str, np.ndarray]
) -> dict:
    """The `calibration` entry of a cell record: T fitted on `val` only, and each split's figures.

    `{"temperature": T, "fitted_on": "val", "bins": 15, "val": SplitCalibration, "test": ...}` as
    plain JSON; empty when the cell has no validation predictions (nothing to fit T on without
    touching test).
    """
    if "val" not in probabilities or not len(labels.get("val", [])):
        return {}
    temperature = fit_temperature(probabilities["val"], labels["val"])
    summary: dict = {"temperature": temperature, "fitted_on": "val", "bins": BINS}
    for split, probs in probabilities.items():
        if not len(labels[split]):
            continue
        scaled = apply_temperature(probs, temperature)
        summary[split] = dataclasses.asdict(
            SplitCalibration(
                ece=expected_calibration_error(probs, labels[split]),
                brier=brier_score(probs, labels[split]),
                nll=negative_log_likelihood(probs, labels[split]),
                ece_scaled=expected_calibration_error(scaled, labels[split]),
                brier_scaled=brier_score(scaled, labels[split]),
                nll_scaled=negative_log_likelihood(scaled, labels[split]),
            )
        )
    return summary
