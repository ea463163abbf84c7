"""A zero-shot cell: no training, only scoring the val and test images against class prompts.

It answers "how far does a foundation model get before any fine-tuning?" on the same split, so
it goes through `evaluation_record` like a trained cell: the same metrics, bootstrap intervals,
predictions file and leaderboard row; its model is saved and profiled for the cost columns like
any other. Class-weight damping (alpha) and the training seed cannot change it: the grid gives it
one cell (`build_grid`), and the record says that they do not apply.
"""

from __future__ import annotations

import dataclasses
import time

from benchmark.run.cell_inputs import CellInputs, evaluated_probabilities
from benchmark.run.devices import resolve_precision
from benchmark.run.environment import environment_info
from benchmark.run.evaluation import evaluation_record
from benchmark.run.folder import RunContext, image_cache_root
from benchmark.run.grid import Cell
from benchmark.run.records import CellRecord
from models import build_zero_shot

NOTE = "zero-shot: no training (alpha and seed do not apply; one cell per run)"


def run_zero_shot_cell(ctx: RunContext, cell: Cell) -> tuple[CellRecord, object]:
    """Builds the prompt classifier for the run's classes and evaluates it; returns its record and
    Keras model."""
    import keras

    config, split = ctx.config, ctx.split
    plan = ctx.plan(cell.model)
    started = time.perf_counter()
    keras.backend.clear_session()
    keras.utils.set_random_seed(cell.seed)
    precision = resolve_precision(config.precision)
    keras.mixed_precision.set_global_policy(precision)
    built = build_zero_shot(
        cell.model,
        split.class_names,
        config.zero_shot_prompts,
        weights=config.weights,
        image_size=plan.image_size,
    )
    inputs = CellInputs.for_model(config, plan, built, image_cache_root(ctx.run_dir))
    build_seconds = time.perf_counter() - started
    eval_start = time.perf_counter()
    evaluated = evaluated_probabilities(built.model, inputs, split, config.batch_size, config.tta)
    eval_seconds = time.perf_counter() - eval_start
    scored = sum(len(split.subset(part)) for part in evaluated["probabilities"]) * max(
        1, evaluated.get("tta", 1)
    )
    record = evaluation_record(ctx, cell, **evaluated)
    record = dataclasses.replace(
        record,
        weights=f"keras-hub preset {plan.entry.preset} ({config.weights}), zero-shot",
        image_size=inputs.image_size,
        preprocess=plan.preprocess,
        head_features="none (zero-shot)",
        precision=precision,
        strategy="none",
        phases=[],
        phase2_note=NOTE,
        params={"total": int(built.model.count_params()), "trainable_by_phase": []},
        timings={
            "train_seconds": 0.0,
            "train_images_per_second": None,
            "build_seconds": build_seconds,  # preset load and prompt embedding
            "eval_seconds": eval_seconds,
            "eval_images_per_second": scored / eval_seconds if eval_seconds else None,
            "total_seconds": time.perf_counter() - started,
        },
        history={},
        extra={"zero_shot_prompts": list(config.zero_shot_prompts)},
        environment=environment_info(),
    )
    return record, built.model
