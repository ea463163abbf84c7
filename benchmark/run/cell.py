"""One cell from configuration to trained model: the one path a grid cell and a tune trial both
take.

`prepare_cell` seeds, chooses precision and strategy, builds the model and its datasets (damped
class weights, augmentation, stored phase-1 features where allowed); `run_cell` trains the prepared
cell with the two-phase recipe and evaluates it into a `CellRecord`. The tuner calls
`prepare_cell` too, so a trial is trained exactly as a grid cell is.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmark.config.remedies import augment_config
from benchmark.config.run_config import RunConfig
from benchmark.errors import error_summary
from benchmark.output import say
from benchmark.plan import ModelPlan
from benchmark.progress import reporter
from benchmark.run.cell_inputs import CellInputs, build_spec, evaluated_probabilities
from benchmark.run.devices import jit_compile_setting, resolve_precision, resolve_strategy
from benchmark.run.environment import environment_info
from benchmark.run.evaluation import evaluation_record
from benchmark.run.folder import RunContext, image_cache_root, split_file, work_dir
from benchmark.run.grid import Cell
from benchmark.run.phase_paths import settled_phases
from benchmark.run.probe import probe_cell
from benchmark.run.records import CellRecord
from benchmark.training.banks import BankInputs, stored_phases
from benchmark.training.checkpoint import PhaseCheckpoint
from benchmark.training.epoch_feed import EpochFeed
from benchmark.training.progressive import ProgressiveResizing
from benchmark.training.recipe import CachedHeadPhase, RecipeSettings, train_two_phase
from data_pipeline import (
    SplitTable,
    damped_class_weights,
)
from models import BuiltModel, build_model

MIN_BATCH_SIZE = 1  # out-of-memory halving stops here


def recipe_settings(config: RunConfig, plan: ModelPlan) -> RecipeSettings:
    """The recipe's knobs for one model: the configuration's values, and the fine-tune depth its
    plan gives it."""
    names = {f.name for f in dataclasses.fields(RecipeSettings)} - {
        "fine_tune_layers",
        "jit_compile",
    }
    return RecipeSettings(
        **{name: getattr(config, name) for name in names},
        fine_tune_layers=plan.fine_tune_layers,
        jit_compile=jit_compile_setting(),
    )


@dataclass
class PreparedCell:
    """A built model and the data it trains on, ready for `train_two_phase` inside
    `strategy.scope()`."""

    model_name: str
    built: BuiltModel
    inputs: CellInputs
    class_weights: np.ndarray
    train: object  # an EpochFeed: phase 1 reads data epoch e, phase 2 initial_epochs + e
    val: object
    steps_per_epoch: int
    batch_size: int
    cached_head: CachedHeadPhase | None
    head_features: str  # "bank", "cached" or "online": what phase 1 trained on
    precision: str
    strategy: object
    progressive: ProgressiveResizing | None = (
        None  # the training side schedule (--progressive-sizes)
    )
    cached_tune: CachedHeadPhase | None = None  # phase 2 on the fine-tune bank
    fine_tune_features: str = "online"  # "bank", "online" or "none": what phase 2 trained on


def prepare_cell(
    config: RunConfig,
    plan: ModelPlan,
    split: SplitTable,
    *,
    seed: int,
    alpha: float,
    run_dir: Path,
    cache: Path,
    fold: int | None = None,
    work: Path | None = None,
) -> PreparedCell:
    """Seeds everything, then builds the model of `plan` and its datasets inside the distribution
    strategy's scope.

    `run_dir` holds the split file (`split_file(run_dir, fold)`) and the stored phase-1 features
    (`run_dir/features`, shared by every alpha of a model); `cache` holds the decoded images every
    cell of the run shares. `work` is the cell's backup folder (None for a tune trial, which keeps
    none): a resumed cell's phase 2 keeps the path its backups were written on.
    """
    import keras

    model_name = plan.name
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    precision = resolve_precision(config.precision)
    keras.mixed_precision.set_global_policy(precision)
    strategy = resolve_strategy(config.strategy)
    batch_size = (
        config.batch_size * strategy.num_replicas_in_sync
    )  # global batch: per-replica x replicas
    progressive = None  # its side variable must not be mirrored, so it is made before the scope
    if plan.progressive_sizes:
        progressive = ProgressiveResizing(plan.progressive_sizes, plan.image_size)
    with strategy.scope():  # build inside the scope so variables are mirrored
        built = build_model(model_name, build_spec(config, len(split.class_names), plan.image_size))
        inputs = CellInputs.for_model(config, plan, built, cache)
        counts = np.bincount(split.label_indices("train"), minlength=len(split.class_names))
        class_weights = damped_class_weights(counts, alpha)
        augmented = config.augment and plan.modality != "text"
        augment = augment_config(config) if augmented else None  # policy and remedies too
        steps_per_epoch = math.ceil(len(split.subset("train")) / batch_size)
        train = EpochFeed(  # epoch e's draws, as the feature banks store them
            lambda epoch: inputs.dataset(
                split,
                "train",
                batch_size,
                augment=augment,
                sample_weights=class_weights,
                shuffle_seed=seed,
                side=progressive.side if progressive else None,
                epoch=epoch,
            ),
            steps_per_epoch,
        )
        settings = recipe_settings(config, plan)
        paths = settled_phases(config, plan, built, settings, split, run_dir, work)
        bank = BankInputs(
            model_name=model_name,
            built=built,
            inputs=inputs,
            split=split,
            split_file=split_file(run_dir, fold),
            root=run_dir,
            batch_size=batch_size,
            class_weights=class_weights,
            seed=seed,
            augment=augment,
        )
        cut = paths.cut if paths.tune == "bank" else None
        cached_head, cached_tune = stored_phases(bank, head=paths.head, cut=cut, settings=settings)
    return PreparedCell(
        model_name=model_name,
        built=built,
        inputs=inputs,
        class_weights=class_weights,
        train=train,
        val=inputs.dataset(split, "val", batch_size),
        steps_per_epoch=steps_per_epoch,
        batch_size=batch_size,
        cached_head=cached_head,
        head_features=paths.head,
        precision=precision,
        strategy=strategy,
        progressive=progressive,
        cached_tune=cached_tune,
        fine_tune_features=paths.tune,
    )


def run_cell(ctx: RunContext, cell: Cell, *, verbose: int | str = "auto", callbacks=()):
    """Trains and evaluates one cell; returns its (successful) record and the trained Keras model.

    Out of device memory, the cell starts again at half the batch size, down to `MIN_BATCH_SIZE`
    (as timm's `--batch-size` search does); the record keeps the batch size it finally used.
    `callbacks` (the experiment tracker's epoch loggers) run in both phases.
    """
    import tensorflow as tf

    batch_size = ctx.config.batch_size
    while True:
        try:
            return _train_cell(ctx, cell, batch_size, verbose, callbacks)
        except tf.errors.ResourceExhaustedError as err:
            if batch_size <= MIN_BATCH_SIZE:
                raise MemoryError(
                    f"out of memory even at batch size {batch_size}: {error_summary(err)}"
                ) from err
            say(
                f"{cell.cell_id}: out of memory at batch size {batch_size} ({error_summary(err)}); "
                f"retrying at {batch_size // 2}"
            )
            batch_size //= 2
            shutil.rmtree(
                work_dir(ctx.run_dir, cell.cell_id), ignore_errors=True
            )  # backups of the larger batch


def _train_cell(ctx: RunContext, cell: Cell, batch_size: int, verbose, callbacks=()):
    config, split = dataclasses.replace(ctx.config, batch_size=batch_size), ctx.split
    plan = ctx.plan(cell.model)
    started = time.perf_counter()
    work = work_dir(ctx.run_dir, cell.cell_id)
    if work.is_dir():
        say(f"resuming {cell.cell_id} from its backup in {work}")
    prepared = prepare_cell(
        config,
        plan,
        split,
        seed=cell.seed,
        alpha=cell.alpha,
        run_dir=ctx.run_dir,
        cache=image_cache_root(ctx.run_dir),
        fold=cell.fold,
        work=work,
    )
    built, strategy = prepared.built, prepared.strategy
    probe_cell(ctx, cell, prepared)  # the pretrained backbone, before training changes it
    with strategy.scope():  # compile and train inside the scope the variables were created in
        training = train_two_phase(
            built,
            prepared.train,
            prepared.val,
            recipe_settings(config, plan),
            steps_per_epoch=prepared.steps_per_epoch,
            verbose=verbose,
            callbacks=list(callbacks),
            cached_head=prepared.cached_head,
            checkpoint=PhaseCheckpoint(work),
            progressive=prepared.progressive,
            cached_tune=prepared.cached_tune,
            single_phase=plan.from_scratch,
        )

    reporter().stage("evaluating")
    eval_start = time.perf_counter()
    record = evaluation_record(
        ctx,
        cell,
        **evaluated_probabilities(
            built.model, prepared.inputs, split, prepared.batch_size, config.tta
        ),
    )
    trained_images = len(split.subset("train")) * sum(p.epochs for p in training.phases)
    bank = prepared.cached_head.bank if prepared.cached_head is not None else None
    tune_bank = prepared.cached_tune.bank if prepared.cached_tune is not None else None
    record = dataclasses.replace(
        record,
        weights=built.weights if plan.kind != "scratch" else "none (trained from scratch)",
        image_size=prepared.inputs.image_size if plan.modality != "text" else None,
        preprocess=plan.preprocess,
        class_weights=[float(w) for w in prepared.class_weights],
        head_features=prepared.head_features,
        fine_tune_features=prepared.fine_tune_features,
        precision=prepared.precision,
        strategy=type(strategy).__name__,
        replicas=strategy.num_replicas_in_sync,
        batch_size=batch_size,
        phases=[
            {k: v for k, v in dataclasses.asdict(p).items() if k != "history"}
            for p in training.phases
        ],
        phase2_note=training.phase2_note,
        params={
            "total": int(built.model.count_params()),
            "trainable_by_phase": [p.trainable_params for p in training.phases],
        },
        timings={
            "train_seconds": training.seconds,
            "train_images_per_second": trained_images / training.seconds
            if training.seconds
            else None,
            "eval_seconds": time.perf_counter() - eval_start,
            # Backbone time this cell spent filling the feature bank (the first alpha cell pays it,
            # later ones read).
            **(
                {
                    "feature_bank_seconds": bank.seconds,
                    "feature_bank_epochs_computed": len(bank.computed),
                }
                if bank
                else {}
            ),
            **(
                {
                    "fine_tune_bank_seconds": tune_bank.seconds,
                    "fine_tune_bank_epochs_computed": len(tune_bank.computed),
                }
                if tune_bank
                else {}
            ),
            "first_epoch_extra_seconds": [p.first_epoch_extra_seconds for p in training.phases],
            "total_seconds": time.perf_counter() - started,
        },
        history={**training.history, "phase_boundary": training.phase_boundary},
    )
    return record, built.model


def failed_record(cell: Cell, ctx: RunContext, error: BaseException) -> CellRecord:
    return CellRecord(
        cell_id=cell.cell_id,
        index=cell.index,
        model=cell.model,
        alpha=cell.alpha,
        seed=cell.seed,
        fold=cell.fold,
        status="failed",
        error=f"{type(error).__name__}: {error_summary(error)}"[:500],
        traceback=traceback.format_exc(),
        config=ctx.config.to_dict(),
        environment=environment_info(),
    )
