"""Which differences between a run folder's saved configuration and the requested one matter.

A resume, a tune re-run and a finished cell all ask the same question: did anything that changes
results move? Apart from `run_config.py` (what a configuration holds and which values are valid)
because the answer is a policy of its own: keys that only change what is written around the
results, keys that choose the grid, and keys added later whose absence means their default.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from benchmark.config.run_config import RunConfig

# Keys that change what a run writes around its results, not the results: a resume may change them.
OUTPUT_ONLY_KEYS = frozenset(
    {
        "profile",
        "robustness",
        "save_models",
        "isolate_cells",
        "mlflow",
        "mlflow_experiment",
        "tensorboard",
    }
)


# Keys that choose which cells a grid has, not how one cell trains.
GRID_AXES = frozenset({"models", "alphas", "seeds"})


# Keys added after run folders were already written, whose defaults do exactly what the suite did
# before them: a saved configuration (`config.yaml`, a record's `config`) that lacks one ran with
# its default, so an old folder resumes, and its finished cells count, without `--force`.
# The fine-tune bank keys choose how phase 2 computes its frozen layers, not what trains (as
# head_features does for phase 1): an old folder's phase 2 ran online; resumed cells may bank.
ABSENT_MEANS_DEFAULT = frozenset(
    {
        "tta",
        "ema",
        "ema_momentum",
        "progressive_sizes",
        "fine_tune_features",
        "fine_tune_bank_limit",
        "augment_policy",
        "random_erasing",
        "mixup",
        "cutmix",
    }
)


def differing_keys(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Keys that change results and differ between a run folder's saved config and the requested
    one.
    """
    defaults = {
        f.name: f.default_factory() if f.default is dataclasses.MISSING else f.default
        for f in dataclasses.fields(RunConfig)
        if f.name in ABSENT_MEANS_DEFAULT
    }
    saved = {**defaults, **saved}
    keys = (set(saved) | set(current)) - OUTPUT_ONLY_KEYS
    if not saved.get("ema") and not current.get("ema"):  # no average: its momentum changed nothing
        keys -= {"ema_momentum"}  # (folders from before the refusal in resolve_config may hold one)
    return sorted(k for k in keys if _normal(saved.get(k)) != _normal(current.get(k)))


def _normal(value: Any) -> Any:
    """Compares lists and tuples alike, and 1 and 1.0 alike, as YAML round trips them."""
    if isinstance(value, (list, tuple)):
        return [_normal(v) for v in value]
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return value
