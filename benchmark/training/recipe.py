"""The two-phase transfer-learning recipe, top to bottom.

Phase 1 trains a new head on frozen pretrained parts (image backbone, text encoder, or both for
fusion); phase 2 unfreezes the top layers of each (BatchNormalization layers stay frozen, and the
backbone stays in inference mode because the head calls it with `training=False`) and fine-tunes
at a low learning rate. Both phases use AdamW and early stopping with the best weights restored.
A model without pretrained weights (simple_cnn, or a registry backbone under `--weights none`) has
nothing to freeze, so it trains whole, in one phase with the budget of both.

This module runs the phases; which layers each opens is `freezing.py`, the optimizer and loss
`optimizer.py`, and the callbacks every phase carries `phase_callbacks.py`.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import keras

from benchmark.training.averaging import AveragedWeights
from benchmark.training.checkpoint import PhaseCheckpoint
from benchmark.training.epoch_feed import phase_data
from benchmark.training.freezing import (
    freeze,
    unfreeze_top,
    unfreeze_top_blocks,
    unfreeze_top_transformer_layers,
)
from benchmark.training.optimizer import compile_model, make_optimizer
from benchmark.training.phase_callbacks import DivergenceGuard, EpochProgress, EpochTimer
from benchmark.training.progressive import ProgressiveResizing
from benchmark.training.settings import RecipeSettings
from models import BuiltModel


@dataclass
class PhaseResult:
    """What one phase did: epochs run, wall time, parameter counts and its history."""

    name: str
    epochs: int
    seconds: float
    trainable_params: int
    total_params: int
    best_epoch: int
    history: dict[str, list[float]] = field(default_factory=dict)
    unfrozen_layers: int = 0
    resumed_from_epoch: int = 0  # > 0 when a backup let a re-run continue this phase
    epoch_seconds: list[float] = field(
        default_factory=list
    )  # wall time of each epoch this process ran
    first_epoch_extra_seconds: float | None = (
        None  # first epoch minus the median later one: tracing and compiling
    )

    def __post_init__(self):
        if self.first_epoch_extra_seconds is None and len(self.epoch_seconds) >= 2:
            later = sorted(self.epoch_seconds[1:])
            median = (later[(len(later) - 1) // 2] + later[len(later) // 2]) / 2
            self.first_epoch_extra_seconds = float(self.epoch_seconds[0] - median)


@dataclass
class CachedHeadPhase:
    """Phase 1 on stored backbone features: a head-only model sharing the full model's head layers.

    `callbacks` feed it (the feature bank's epoch loader); `bank` is that bank, for its timings.
    """

    model: keras.Model
    train: object
    val: object
    callbacks: list = field(default_factory=list)
    bank: object = None


@dataclass
class TrainingResult:
    """Both phases; `history` is one curve with `phase_boundary` epochs of phase 1 first."""

    phases: list[PhaseResult]
    phase2_note: str = ""

    @property
    def history(self) -> dict[str, list[float]]:
        merged: dict[str, list[float]] = {}
        for phase in self.phases:
            for key, values in phase.history.items():
                merged.setdefault(key, []).extend(float(v) for v in values)
        return merged

    @property
    def phase_boundary(self) -> int:
        return self.phases[0].epochs

    @property
    def seconds(self) -> float:
        return sum(p.seconds for p in self.phases)


def _count(weights) -> int:
    return int(sum(int(w.numpy().size) if hasattr(w, "numpy") else int(w.size) for w in weights))


def run_phase(
    name,
    model,
    train_ds,
    val_ds,
    epochs,
    optimizer,
    settings: RecipeSettings,
    callbacks,
    verbose,
    checkpoint: PhaseCheckpoint | None = None,
) -> PhaseResult:
    """Compiles and fits one phase with early stopping (best weights restored).

    With a `checkpoint`, a phase that already finished is skipped (its weights reloaded) and an
    interrupted one continues from its last finished epoch. With an averaging optimizer (`--ema`),
    validation, early stopping and the weights the phase ends with are the average's.
    """
    compile_model(model, optimizer, settings.label_smoothing, settings.jit_compile)
    if checkpoint is not None and (done := checkpoint.finished(name, model)) is not None:
        return PhaseResult(**done)
    stopper = keras.callbacks.EarlyStopping(
        monitor=settings.monitor,
        patience=settings.patience,
        restore_best_weights=True,
        mode="min" if settings.monitor == "val_loss" else "max",
    )
    backup = checkpoint.epoch_backup(name, stopper) if checkpoint is not None else None
    guard, timer = DivergenceGuard(), EpochTimer()
    progress = EpochProgress(name, [c for c in callbacks if hasattr(c, "stored")])
    # The backup must follow the stopper (it saves the stopper's state) and the average's swap back
    # out.
    stopping = (
        AveragedWeights().around(stopper) if getattr(optimizer, "use_ema", False) else [stopper]
    )
    start = time.perf_counter()
    # shuffle=False: the datasets shuffle themselves (seeded, per epoch); Keras cannot shuffle a
    # tf.data.Dataset.
    fitted = model.fit(
        train_ds,
        validation_data=val_ds,
        epochs=epochs,
        verbose=verbose,
        shuffle=False,
        callbacks=[progress, timer, guard, *stopping, *([backup] if backup else []), *callbacks],
    )
    if guard.where:
        raise FloatingPointError(
            f"training diverged in phase {name!r} ({guard.where}); try a lower learning rate"
        )
    history = backup.history if backup is not None else fitted.history
    ran = len(history.get("loss", []))
    result = PhaseResult(
        name=name,
        epochs=ran,
        seconds=time.perf_counter() - start,
        trainable_params=_count(model.trainable_weights),
        total_params=_count(model.weights),
        best_epoch=(stopper.best_epoch + 1) if ran else 0,
        history={k: [float(v) for v in vals] for k, vals in history.items()},
        resumed_from_epoch=backup.resumed_from_epoch if backup is not None else 0,
        epoch_seconds=timer.seconds,
    )
    if checkpoint is not None:
        checkpoint.mark_finished(name, model, dataclasses.asdict(result))
    return result


def _averaging(settings: RecipeSettings) -> dict:
    return {"ema": settings.ema, "ema_momentum": settings.ema_momentum}


def train_two_phase(
    built: BuiltModel,
    train_ds,
    val_ds,
    settings: RecipeSettings,
    *,
    steps_per_epoch: int,
    callbacks=(),
    verbose: int | str = "auto",
    cached_head: CachedHeadPhase | None = None,
    checkpoint: PhaseCheckpoint | None = None,
    progressive: ProgressiveResizing | None = None,
    cached_tune: CachedHeadPhase | None = None,
) -> TrainingResult:
    """Runs the recipe on a freshly built model; the model ends with the best weights of the last
    phase.

    With `progressive` (a from-scratch model only), the single phase trains a twin of the model that
    takes any image side, with the callback that sets each epoch's side; the twin shares every
    weight.

    With `cached_head`, phase 1 trains the head on precomputed backbone features; the head layers
    are shared, so phase 2 starts from exactly those weights. With `cached_tune`, phase 2 trains the
    top of the backbone and the head on the fine-tune bank's activations at the cut (the same layer
    objects again, so the full model ends with the weights). With `checkpoint`, every epoch is
    backed up and a re-run resumes (see `benchmark.training.checkpoint`).

    `train_ds` is a dataset or an `EpochFeed`; a feed gives phase 1 (or the single phase) data
    epochs 0, 1, ... and phase 2 data epochs from `initial_epochs` on, the epochs the banks store.
    """
    model, backbone, text_backbone = built.model, built.backbone, built.text_backbone
    if progressive is not None and (backbone is not None or not built.from_scratch):
        raise ValueError(
            "progressive resizing needs a network built to train from scratch (RunConfig refuses "
            "others)"
        )

    if built.from_scratch:
        # Nothing pretrained (no backbone, or a random one): nothing to freeze, so one phase with
        # the budget of both.
        if backbone is not None:
            backbone.trainable = True
        epochs = settings.initial_epochs + settings.fine_tune_epochs
        optimizer = make_optimizer(
            settings.initial_lr,
            settings.weight_decay,
            settings.lr_schedule,
            epochs,
            steps_per_epoch,
            settings.warmup_epochs,
            **_averaging(settings),
        )
        if progressive is not None:
            model, callbacks = (
                progressive.training_model(model),
                [progressive.callback(epochs), *callbacks],
            )
        train, feed = phase_data(train_ds, 0)
        only = run_phase(
            "single",
            model,
            train,
            val_ds,
            epochs,
            optimizer,
            settings,
            [*feed, *callbacks],
            verbose,
            checkpoint,
        )
        return TrainingResult(
            [only],
            phase2_note="single phase, whole network trained: no pretrained weights to freeze",
        )

    for pretrained in (backbone, text_backbone):
        if pretrained is not None:
            freeze(pretrained)
    optimizer = make_optimizer(
        settings.initial_lr,
        settings.weight_decay,
        settings.lr_schedule,
        settings.initial_epochs,
        steps_per_epoch,
        settings.warmup_epochs,
        **_averaging(settings),
    )
    if cached_head is not None:
        head = run_phase(
            "head",
            cached_head.model,
            cached_head.train,
            cached_head.val,
            settings.initial_epochs,
            optimizer,
            settings,
            [*cached_head.callbacks, *callbacks],
            verbose,
            checkpoint,
        )
    else:
        train, feed = phase_data(train_ds, 0)
        head = run_phase(
            "head",
            model,
            train,
            val_ds,
            settings.initial_epochs,
            optimizer,
            settings,
            [*feed, *callbacks],
            verbose,
            checkpoint,
        )

    if settings.fine_tune_layers in (0, "0") or settings.fine_tune_epochs == 0:
        return TrainingResult(
            [head], phase2_note="phase 2 skipped (fine_tune_layers or fine_tune_epochs is 0)"
        )

    if backbone is None:
        unfrozen = 0
    elif built.blocks is not None:  # keras-hub image encoder: count transformer blocks
        unfrozen = unfreeze_top_blocks(backbone, built.blocks, settings.fine_tune_layers)
    else:
        unfrozen = unfreeze_top(backbone, settings.fine_tune_layers)
    if text_backbone is not None:
        unfrozen += unfreeze_top_transformer_layers(text_backbone, settings.text_fine_tune_layers)
    # `trainable` changed, so the model must be compiled again for it to take effect.
    optimizer = make_optimizer(
        settings.fine_tune_lr,
        settings.weight_decay,
        settings.lr_schedule,
        settings.fine_tune_epochs,
        steps_per_epoch,
        0,
        **_averaging(settings),
    )
    if cached_tune is not None:
        tune = run_phase(
            "fine_tune",
            cached_tune.model,
            cached_tune.train,
            cached_tune.val,
            settings.fine_tune_epochs,
            optimizer,
            settings,
            [*cached_tune.callbacks, *callbacks],
            verbose,
            checkpoint,
        )
    else:  # data epochs from phase 1's budget on, as the fine-tune bank reads them
        train, feed = phase_data(train_ds, settings.initial_epochs)
        tune = run_phase(
            "fine_tune",
            model,
            train,
            val_ds,
            settings.fine_tune_epochs,
            optimizer,
            settings,
            [*feed, *callbacks],
            verbose,
            checkpoint,
        )
    tune.unfrozen_layers = unfrozen
    return TrainingResult([head, tune])
