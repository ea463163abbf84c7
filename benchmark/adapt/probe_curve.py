"""`adapt --curve probe`: the adaptation curve of a logistic-regression head on frozen features.

Every source and target image's pooled backbone features are computed once (`adapt.features`);
then, per model and alpha, one head per k is fitted on the source's training images plus the k
drawn target photos per class, and scored on the fixed target test set (the same images as
`--curve finetune` scores). One more head, fitted on the target's whole training pool only (every
target photo outside the fixed test set), is the in-domain reference the gap is measured to.

Choices, none made on the target's test photos:

* the head is `training.linear_probe`'s: standardised features, multinomial L2 logistic regression;
  its `C` is chosen per model and alpha once, at k = 0, on the source's validation images
  (`PROBE_C_GRID`), and kept for every k and the in-domain head, so the curve moves only with the
  labels;
* alpha weighs classes as in the grid (`damped_class_weights` of the weighted class counts);
* the target photos' weight (`TargetWeighting`): thousands of source photos drown a few target
  ones, so by default each class's k target photos together weigh a share of that class's source
  training photos (docs/adaptation.md says how the default was chosen);
* with `--align-features standardise`, each domain's features are standardised with its own
  statistics before any head sees them (`align_domains`): the source's by its training images,
  the target's by its unlabelled pool (every target photo outside the test set; its labels are
  not read). A camera, light or background that moves every feature's mean or spread is undone
  at the feature level, as BatchNorm adaptation undoes it inside the backbone, at the cost of
  assuming the target's class mix is near the source's.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from benchmark.adapt.curve import AdaptRow
from benchmark.adapt.features import StoredFeatures
from benchmark.adapt.plan import AdaptPlan, TargetWeighting
from benchmark.output import say
from benchmark.results import stats
from benchmark.training.linear_probe import MAX_ITER, PROBE_C_GRID
from data_pipeline import damped_class_weights
from data_pipeline.merge import SOURCE_COLUMN
from data_pipeline.shots import NOT_DRAWN


@dataclass
class CurveData:
    """Row positions and labels of each role in the features' row order."""

    source: dict[str, tuple[list[str], np.ndarray]]  # split -> (paths, label indices)
    target_test: tuple[list[str], np.ndarray]
    target_pool: tuple[list[str], np.ndarray, np.ndarray]  # paths, labels, ranks


def curve_data(plan: AdaptPlan) -> CurveData:
    table = plan.base.table
    index = {name: i for i, name in enumerate(plan.base.class_names)}
    source = table[table[SOURCE_COLUMN] != plan.target]
    target = table[table[SOURCE_COLUMN] == plan.target]
    rank = target["content_hash"].map(plan.draw.ranks).astype(int).to_numpy()

    def part(rows):
        return list(rows["path"]), np.array([index[label] for label in rows["label"]], int)

    pool = target[rank != NOT_DRAWN]
    return CurveData(
        {split: part(source[source["split"] == split]) for split in ("train", "val", "test")},
        part(target[rank == NOT_DRAWN]),
        (*part(pool), rank[rank != NOT_DRAWN]),
    )


def align_domains(features: StoredFeatures, data: CurveData, align: str) -> StoredFeatures:
    """`features` with each domain's rows standardised by its own statistics (`align`
    "standardise"), or unchanged ("none"). Source rows use the source's training images' mean and
    standard deviation; target rows (pool and test) the pool's; the test rows never inform them."""
    if align == "none":
        return features
    target = set(data.target_test[0]) | set(data.target_pool[0])
    is_target = np.array([path in target for path in features.paths])
    x = features.features.astype(np.float64)
    out = np.empty_like(x)
    for rows, reference in (
        (~is_target, features.rows(data.source["train"][0])),
        (is_target, features.rows(data.target_pool[0])),
    ):
        if not len(reference):  # no pool (every target photo is a test photo): left as it is
            out[rows] = x[rows]
            continue
        mean, spread = reference.mean(axis=0), reference.std(axis=0)
        out[rows] = (x[rows] - mean) / np.where(spread > 1e-6, spread, 1.0)
    return dataclasses.replace(features, features=out.astype(np.float32))


class _Head:
    """Standardiser + logistic regression, weighted by sample."""

    def __init__(self, x, y, weights, c_value: float, num_classes: int):
        self.scaler = StandardScaler().fit(x)
        self.model = LogisticRegression(C=c_value, max_iter=MAX_ITER)
        self.num_classes = num_classes
        with warnings.catch_warnings():  # a weakly regularised fit may stop short: still scored
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.model.fit(self.scaler.transform(x), y, sample_weight=weights)

    def predict(self, x) -> np.ndarray:
        if not len(x):
            return np.zeros(0, int)
        return self.model.classes_[self.model.predict_proba(self.scaler.transform(x)).argmax(1)]


def _accuracy(y, predicted) -> float | None:
    return float(np.mean(y == predicted)) if len(y) else None


@dataclass
class _Fit:
    x: np.ndarray
    y: np.ndarray
    weights: np.ndarray


def _training_set(features, data, alpha, k, weighting, num_classes) -> _Fit:
    paths, y_source = data.source["train"]
    pool_paths, y_pool, ranks = data.target_pool
    shots = ranks < k
    y_shots = y_pool[shots]
    source_counts = np.bincount(y_source, minlength=num_classes).astype(float)
    shot_counts = np.bincount(y_shots, minlength=num_classes).astype(float)
    per_target = weighting.factors(source_counts, shot_counts)[y_shots]
    weighted_counts = source_counts + np.bincount(y_shots, per_target, minlength=num_classes)
    classes = damped_class_weights(np.maximum(weighted_counts, 1e-9), alpha)
    x = np.concatenate([features.rows(paths), features.rows(np.array(pool_paths)[shots])])
    y = np.concatenate([y_source, y_shots])
    weights = classes[y] * np.concatenate([np.ones(len(y_source)), per_target])
    return _Fit(x, y, weights)


def choose_c(features: StoredFeatures, data: CurveData, alpha: float, num_classes: int) -> float:
    """The grid's `C` with the best source-validation accuracy at k = 0 (ties: the smaller C)."""
    fit = _training_set(features, data, alpha, 0, TargetWeighting(), num_classes)
    val_paths, y_val = data.source["val"]
    x_val = features.rows(val_paths)
    best, best_accuracy = PROBE_C_GRID[0], -1.0
    for c_value in sorted(PROBE_C_GRID):
        head = _Head(fit.x, fit.y, fit.weights, c_value, num_classes)
        accuracy = _accuracy(y_val, head.predict(x_val)) if len(y_val) else 0.0
        if accuracy > best_accuracy:
            best, best_accuracy = c_value, accuracy
    return best


def probe_rows(
    features: StoredFeatures,
    plan: AdaptPlan,
    alphas: list[float],
    weighting: TargetWeighting,
    seed: int,
    chosen_c: dict[float, float] | None = None,
) -> list[AdaptRow]:
    """A row per alpha and k for one model, with the in-domain reference and the gap columns.

    `chosen_c` (alpha -> C) skips the choice of C: a study of several weightings chooses it once
    (the choice never depends on the weighting: k = 0 has no target photo)."""
    data = curve_data(plan)
    features = align_domains(features, data, weighting.align)
    num_classes = len(plan.base.class_names)
    test_paths, y_test = data.target_test
    x_test = features.rows(test_paths)
    x_source_test = features.rows(data.source["test"][0])
    x_val = features.rows(data.source["val"][0])
    rows = []
    for alpha in alphas:
        started = time.perf_counter()
        c_value = (chosen_c or {}).get(alpha) or choose_c(features, data, alpha, num_classes)
        pool_paths, y_pool, _ = data.target_pool
        pool_weights = damped_class_weights(
            np.maximum(np.bincount(y_pool, minlength=num_classes), 1e-9), alpha
        )[y_pool]
        in_domain = None
        if len(np.unique(y_pool)) > 1:
            head = _Head(features.rows(pool_paths), y_pool, pool_weights, c_value, num_classes)
            in_domain = _accuracy(y_test, head.predict(x_test))
        for k in plan.draw.shots:
            fit = _training_set(features, data, alpha, k, weighting, num_classes)
            head = _Head(fit.x, fit.y, fit.weights, c_value, num_classes)
            predicted = head.predict(x_test)
            low = high = None
            if len(y_test):
                low, high = stats.bootstrap_ci(
                    y_test, predicted, seed=seed, num_classes=num_classes
                )
            rows.append(
                AdaptRow(
                    features.model,
                    float(alpha),
                    k,
                    _accuracy(y_test, predicted),
                    low,
                    high,
                    _accuracy(data.source["test"][1], head.predict(x_source_test)),
                    _accuracy(data.source["val"][1], head.predict(x_val)),
                    len(y_test),
                    curve="probe",
                    target_weighting=weighting.label(),
                    feature_alignment=weighting.align,
                    probe_C=c_value,
                    in_domain_accuracy=in_domain,
                )
            )
        say(
            f"probe curve of {features.model}, alpha {alpha:g}: C {c_value:g} (source val), "
            f"{len(plan.draw.shots)} k + in-domain fitted in {time.perf_counter() - started:.1f} s"
        )
    return rows
