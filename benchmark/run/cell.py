"""One cell from configuration to trained model: the one path a grid cell and a tune trial both
take.

`prepare_cell` seeds, chooses precision and strategy, builds the model and its datasets (damped
class weights, augmentation, stored phase-1 features where allowed); `run_cell` trains the prepared
cell with the two-phase recipe and evaluates it into a `CellRecord`. The tuner calls
`prepare_cell` too, so a trial is trained exactly as a grid cell is.
"""

from __future__ import annotations

import dataclasses
import hashlib
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
from benchmark.plan import ModelPlan, resolve_plan
from benchmark.progress import reporter
from benchmark.run.devices import jit_compile_setting, resolve_precision, resolve_strategy
from benchmark.run.environment import environment_info
from benchmark.run.evaluation import evaluation_record
from benchmark.run.folder import RunContext, image_cache_root, split_file, work_dir
from benchmark.run.grid import Cell
from benchmark.run.phase1 import phase1_mode
from benchmark.run.phase2 import (
    Phase2Plan,
    phase2_on_resume,
    plan_phase2,
    record_phase2_path,
)
from benchmark.run.probe import probe_cell
from benchmark.run.records import CellRecord
from benchmark.training.banks import BankInputs, stored_phases
from benchmark.training.checkpoint import PhaseCheckpoint
from benchmark.training.epoch_feed import EpochFeed
from benchmark.training.metrics import predict_probabilities
from benchmark.training.progressive import ProgressiveResizing
from benchmark.training.recipe import CachedHeadPhase, RecipeSettings, train_two_phase
from data_pipeline import (
    SplitTable,
    damped_class_weights,
    fill_shared_cache,
    make_dataset,
)
from models import BuildSpec, BuiltModel, HeadConfig, TextConfig, build_model, preprocess_function

MIN_BATCH_SIZE = 1  # out-of-memory halving stops here

# RunConfig key -> TextConfig field: the text branch's knobs carry a `text_`/`fusion_` prefix on the
# command line.
TEXT_KEYS = {
    "text_encoder": "encoder",
    "sequence_length": "sequence_length",
    "text_fine_tune_layers": "fine_tune_layers",
    "text_pooling": "pooling",
    "fusion_units": "branch_units",
    "fusion_dropout": "branch_dropout",
}


def recipe_settings(config: RunConfig, model_name: str) -> RecipeSettings:
    """The recipe's knobs for one model: the configuration's values, and the model's own fine-tune
    depth."""
    names = {f.name for f in dataclasses.fields(RecipeSettings)} - {
        "fine_tune_layers",
        "jit_compile",
    }
    layers = resolve_plan(config, model_name).fine_tune_layers
    return RecipeSettings(
        **{name: getattr(config, name) for name in names},
        fine_tune_layers=layers,
        jit_compile=jit_compile_setting(),
    )


def build_spec(config: RunConfig, num_classes: int, image_size: int | None = None) -> BuildSpec:
    """What the builder receives; `image_size` is the plan's side (None only to validate knobs)."""
    return BuildSpec(
        num_classes=num_classes,
        image_size=image_size,
        weights=config.weights,
        head=HeadConfig(units=tuple(config.head_units), dropout=config.dropout),
        simple_cnn=config.simple_cnn_config(),
        text=TextConfig(**{field: getattr(config, key) for key, field in TEXT_KEYS.items()}),
    )


@dataclass
class CellInputs:
    """How the data pipeline must feed one model: its size, preprocessing, text tokenizer and
    image cache.

    `cache_dir` holds the decoded, resized images (and token ids) of each split, shared by every
    cell that feeds the same inputs (`fill_shared_cache`): a sweep decodes each image once, not
    once per cell.
    """

    image_size: int
    preprocess: object
    modality: str
    cache_dir: Path
    tokenizer: object = None
    sequence_length: int = 32

    @classmethod
    def for_model(cls, config: RunConfig, plan: ModelPlan, built, cache_root: Path) -> CellInputs:
        """How the model of `plan`, built as `built`, is fed; caches under `cache_root` by what
        they hold."""
        size, modality = plan.image_size, plan.modality
        key = f"{size}px_{modality.replace('+', '_')}"
        if modality != "image":  # token ids depend on the tokenizer and the sequence length
            key += (
                f"_{hashlib.sha1(config.text_encoder.encode()).hexdigest()[:8]}"
                f"_{config.sequence_length}tok"
            )
        return cls(
            image_size=size,
            preprocess=preprocess_function(plan.preprocess),
            modality=modality,
            cache_dir=Path(cache_root) / key,
            tokenizer=built.tokenizer,
            sequence_length=config.sequence_length,
        )

    def dataset(self, split: SplitTable, part: str, batch_size: int, **kwargs):
        frame = split.subset(part)
        rows = "\n".join(f"{path}\t{label}" for path, label in zip(frame["path"], frame["label"]))
        prefix = self.cache_dir / f"{part}_{hashlib.sha1(rows.encode()).hexdigest()[:12]}"
        cache = fill_shared_cache(
            frame,
            split.class_names,
            prefix,
            image_size=self.image_size,
            inputs=self.modality,
            tokenizer=self.tokenizer,
            sequence_length=self.sequence_length,
        )
        return make_dataset(
            frame,
            split.class_names,
            image_size=self.image_size,
            batch_size=batch_size,
            preprocess=self.preprocess,
            cache=cache,
            inputs=self.modality,
            tokenizer=self.tokenizer,
            sequence_length=self.sequence_length,
            **kwargs,
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
    model_name: str,
    split: SplitTable,
    *,
    seed: int,
    alpha: float,
    run_dir: Path,
    cache: Path,
    fold: int | None = None,
    plan: ModelPlan | None = None,
) -> PreparedCell:
    """Seeds everything, then builds the model and its datasets inside the distribution strategy's
    scope.

    `run_dir` holds the split file (`split_file(run_dir, fold)`) and the stored phase-1 features
    (`run_dir/features`, shared by every alpha of a model); `cache` holds the decoded images every
    cell of the run shares.
    `plan` is the run's plan of the model (a tune trial, with a configuration of its own,
    resolves its own plan).
    """
    import keras

    plan = plan or resolve_plan(config, model_name)
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
        mode = "online" if plan.head_features == "online" else phase1_mode(config, built, augment)
        settings = recipe_settings(config, model_name)
        if plan.fine_tune_features in ("none", "online"):  # settled by the plan
            phase2 = Phase2Plan(plan.fine_tune_features, plan.fine_tune_reason)
        else:  # the built model's cut and the bank's size settle it
            phase2 = plan_phase2(
                config,
                built,
                settings,
                num_train=len(split.subset("train")),
                num_val=len(split.subset("val")),
                folder=run_dir,
            )
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
        cut = phase2.cut if phase2.mode == "bank" else None
        cached_head, cached_tune = stored_phases(bank, head=mode, cut=cut, settings=settings)
        if phase2.mode == "online" and config.fine_tune_features == "auto":
            say(f"{model_name}: phase 2 runs online: {phase2.reason}")
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
        head_features=mode,
        precision=precision,
        strategy=strategy,
        progressive=progressive,
        cached_tune=cached_tune,
        fine_tune_features=phase2.mode,
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
    prepared = prepare_cell(
        config,
        cell.model,
        split,
        seed=cell.seed,
        alpha=cell.alpha,
        run_dir=ctx.run_dir,
        cache=image_cache_root(ctx.run_dir),
        fold=cell.fold,
        plan=plan,
    )
    built, strategy = prepared.built, prepared.strategy
    probe_cell(ctx, cell, prepared)  # the pretrained backbone, before training changes it
    work = work_dir(ctx.run_dir, cell.cell_id)
    if work.is_dir():
        say(f"resuming {cell.cell_id} from its backup in {work}")
    tune_mode, note = phase2_on_resume(work, prepared.fine_tune_features)
    if note:
        say(f"{cell.cell_id}: {note}")
    if tune_mode != prepared.fine_tune_features:
        prepared = dataclasses.replace(prepared, cached_tune=None, fine_tune_features=tune_mode)
    record_phase2_path(work, tune_mode)
    with strategy.scope():  # compile and train inside the scope the variables were created in
        training = train_two_phase(
            built,
            prepared.train,
            prepared.val,
            recipe_settings(config, cell.model),
            steps_per_epoch=prepared.steps_per_epoch,
            verbose=verbose,
            callbacks=list(callbacks),
            cached_head=prepared.cached_head,
            checkpoint=PhaseCheckpoint(work),
            progressive=prepared.progressive,
            cached_tune=prepared.cached_tune,
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


def evaluated_probabilities(
    model, inputs: CellInputs, split: SplitTable, batch_size: int, tta: int
) -> dict:
    """Val and test probabilities as `evaluation_record` takes them: the plain view, or averaged
    over `tta` views.

    Both splits get exactly the same views (`data_pipeline.tta`, made on 0..255 before the model's
    preprocessing). View 0 is the image itself, so the plain figures come from the first pass and
    cost nothing extra. A text-only model has no image to vary: it is evaluated once and records
    tta 0.
    """
    parts = [part for part in ("val", "test") if not split.subset(part).empty]
    plain = {
        part: predict_probabilities(model, inputs.dataset(split, part, batch_size))
        for part in parts
    }
    views = tta if inputs.modality != "text" else 0
    if views < 1:
        return {"probabilities": plain}
    averaged = {
        part: np.mean(
            [
                plain[part],
                *(
                    predict_probabilities(model, inputs.dataset(split, part, batch_size, view=view))
                    for view in range(1, views)
                ),
            ],
            axis=0,
        )
        for part in parts
    }
    return {"probabilities": averaged, "plain_probabilities": plain, "tta": views}


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
