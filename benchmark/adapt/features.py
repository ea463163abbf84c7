"""The frozen backbone features of the probe curve: computed once per model for every source and
target image, stored in `OUTPUT/features/`, and read back by every k and every later run.

One file per model and source (each `--data` source and the target apart), so another target in
the same folder reuses the source's file. What the features depend on is in the file name: the
model, its plan's image side, its weights and the identity of the source's images (a digest of
every image's path and decoded-pixel content hash, in the fixed order the rows are stored in).
The draw, `--shots` and the weighting are not part of it: a second k, another `--shots` list or
a resumed run reads the same files and computes nothing. A file that does not load or lacks rows
is named in a warning and computed again (`head_features.cached_features`).

The images are fed un-augmented, with the model's own preprocessing, exactly as its cells' stored
phase-1 features are.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.config.run_config import RunConfig
from benchmark.errors import UsageError
from benchmark.plan import ModelPlan, resolve_plan
from data_pipeline.merge import SOURCE_COLUMN


@dataclass
class StoredFeatures:
    """One model's pooled features of every image, row i for `paths[i]`."""

    model: str
    image_size: int
    weights: str
    paths: list[str]
    features: np.ndarray
    computed: list[str]  # the sources whose features were computed (not read from a file)

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
    """Every distinct image of the merged table (path, label, content hash, source), sorted by
    source and path: the stored row order."""
    rows = table.drop_duplicates("path")[["path", "label", "content_hash", SOURCE_COLUMN]]
    return rows.sort_values([SOURCE_COLUMN, "path"], kind="stable").reset_index(drop=True)


def features_file(folder: Path, plan: ModelPlan, rows: pd.DataFrame, source: str) -> Path:
    """`folder/<model>_<side>px_<weights digest>_<source>_<images digest>.npy`."""
    images = "\n".join(f"{p}\t{h}" for p, h in zip(rows["path"], rows["content_hash"]))
    digest = hashlib.sha1(images.encode()).hexdigest()[:12]
    weights = hashlib.sha1(plan.weights.encode()).hexdigest()[:8]
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", source)[:40]
    return Path(folder) / f"{plan.name}_{plan.image_size}px_{weights}_{name}_{digest}.npy"


def stored_features(
    config: RunConfig, plan: ModelPlan, rows: pd.DataFrame, class_names: list[str], folder: Path
) -> StoredFeatures:
    """The model's features of `rows` (`image_rows`), read from `folder` or computed and stored
    there, source by source; the model is built only when some must be computed."""
    parts, computed, built = [], [], None
    for source, own in rows.groupby(SOURCE_COLUMN, sort=True):
        own = own.reset_index(drop=True)
        cache_file = features_file(folder, plan, own, str(source))
        features = _load(cache_file, len(own))
        if features is None:
            built = built or _build(config, plan, class_names)
            features = _compute(built, plan, config, own, class_names, cache_file)
            computed.append(str(source))
        parts.append((list(own["path"]), features))
    paths = [path for own, _ in parts for path in own]
    features = np.concatenate([features for _, features in parts])
    return StoredFeatures(plan.name, plan.image_size, plan.weights, paths, features, computed)


def _load(cache_file: Path, rows: int) -> np.ndarray | None:
    if not cache_file.is_file():
        return None
    try:
        stored = np.load(cache_file)
    except (EOFError, OSError, ValueError):
        return None  # computed again; `cached_features` names it
    return stored if stored.ndim == 2 and len(stored) == rows else None


def _build(config: RunConfig, plan: ModelPlan, class_names: list[str]):
    import keras

    from benchmark.run.cell import build_spec
    from benchmark.training.head_features import supports_cached_features
    from models import build_model

    keras.backend.clear_session()
    built = build_model(plan.name, build_spec(config, len(class_names), plan.image_size))
    if not supports_cached_features(built):
        raise UsageError(
            f"--curve probe: {plan.name} has no frozen pretrained backbone with a pooled head; "
            "use --curve finetune for it"
        )
    return built


def _compute(built, plan, config, rows, class_names, cache_file: Path) -> np.ndarray:
    from benchmark.training.head_features import cached_features
    from data_pipeline import make_dataset
    from models import preprocess_function

    dataset = make_dataset(
        rows,
        class_names,
        image_size=plan.image_size,
        batch_size=config.batch_size,
        preprocess=preprocess_function(plan.preprocess),
    )
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    return cached_features(built, dataset, cache_file, rows=len(rows))
