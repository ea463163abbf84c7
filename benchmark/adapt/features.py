"""The frozen backbone features of the probe curve: computed once per model for every source and
target image, stored in `OUTPUT/features/`, and read back by every k and every later run.

What the features depend on is in the file name: the model, its plan's image side, its weights
and the identity of the images (a digest of every image's path and decoded-pixel content hash, in
the fixed order the rows are stored in). The draw, `--shots` and the weighting are not part of it:
a second k, another `--shots` list or a resumed run reads the same file and computes nothing. A
file that does not load or lacks rows is named in a warning and computed again
(`head_features.cached_features`).

The images are fed un-augmented, with the model's own preprocessing, exactly as its cells' stored
phase-1 features are.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.config.run_config import RunConfig
from benchmark.errors import UsageError
from benchmark.plan import ModelPlan, resolve_plan


@dataclass
class StoredFeatures:
    """One model's pooled features of every image, row i for `paths[i]`."""

    model: str
    image_size: int
    weights: str
    paths: list[str]
    features: np.ndarray
    computed: bool  # False when read from an earlier run's file

    def rows(self, paths) -> np.ndarray:
        """The features of `paths`, in their order."""
        index = {path: i for i, path in enumerate(self.paths)}
        return self.features[[index[path] for path in paths]]


def probe_plans(config: RunConfig) -> tuple[list[ModelPlan], list[str]]:
    """The grid's models a probe can run on (an image model with a pretrained backbone), and the
    names of those it cannot. No model left is a `UsageError` naming `--curve`."""
    plans, skipped = [], []
    for name in config.models:
        plan = resolve_plan(config, name)
        if plan.kind in ("zero_shot", "late_fusion") or plan.modality != "image":
            skipped.append(name)
        elif plan.from_scratch:
            skipped.append(name)
        else:
            plans.append(plan)
    if not plans:
        raise UsageError(
            f"--curve probe needs a model with a pretrained image backbone; --models "
            f"{','.join(config.models)} has none (or --weights none): pick one (e.g. "
            "efficientnet_lite0) or use --curve finetune"
        )
    return plans, skipped


def image_rows(table: pd.DataFrame) -> pd.DataFrame:
    """Every distinct image of the merged table (path, label, content hash), sorted by path: the
    stored row order."""
    rows = table.drop_duplicates("path")[["path", "label", "content_hash"]]
    return rows.sort_values("path", kind="stable").reset_index(drop=True)


def features_file(folder: Path, plan: ModelPlan, rows: pd.DataFrame) -> Path:
    """`folder/<model>_<side>px_<weights digest>_<images digest>.npy`."""
    images = "\n".join(f"{p}\t{h}" for p, h in zip(rows["path"], rows["content_hash"]))
    digest = hashlib.sha1(images.encode()).hexdigest()[:12]
    weights = hashlib.sha1(plan.weights.encode()).hexdigest()[:8]
    return Path(folder) / f"{plan.name}_{plan.image_size}px_{weights}_{digest}.npy"


def stored_features(
    config: RunConfig, plan: ModelPlan, rows: pd.DataFrame, class_names: list[str], folder: Path
) -> StoredFeatures:
    """The model's features of `rows` (`image_rows`), read from `folder` or computed and stored
    there; the model is built only when they must be computed."""
    cache_file = features_file(folder, plan, rows)
    computed = not cache_file.is_file()
    features = _load(cache_file, len(rows))
    if features is None:
        computed = True
        features = _compute(config, plan, rows, class_names, cache_file)
    return StoredFeatures(
        plan.name, plan.image_size, plan.weights, list(rows["path"]), features, computed
    )


def _load(cache_file: Path, rows: int) -> np.ndarray | None:
    if not cache_file.is_file():
        return None
    try:
        stored = np.load(cache_file)
    except (EOFError, OSError, ValueError):
        return None  # computed again; `cached_features` names it
    return stored if stored.ndim == 2 and len(stored) == rows else None


def _compute(config, plan, rows, class_names, cache_file: Path) -> np.ndarray:
    import keras

    from benchmark.run.cell import build_spec
    from benchmark.training.head_features import cached_features, supports_cached_features
    from data_pipeline import make_dataset
    from models import build_model, preprocess_function

    keras.backend.clear_session()
    built = build_model(plan.name, build_spec(config, len(class_names), plan.image_size))
    if not supports_cached_features(built):
        raise UsageError(
            f"--curve probe: {plan.name} has no frozen pretrained backbone with a pooled head; "
            "use --curve finetune for it"
        )
    dataset = make_dataset(
        rows,
        class_names,
        image_size=plan.image_size,
        batch_size=config.batch_size,
        preprocess=preprocess_function(plan.preprocess),
    )
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    return cached_features(built, dataset, cache_file, rows=len(rows))
