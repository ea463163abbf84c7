"""The two-phase transfer-learning recipe, top to bottom.

Phase 1 trains a new head on frozen pretrained parts (image backbone, text encoder, or both for
fusion); phase 2 unfreezes the top layers of each (BatchNormalization layers stay frozen, and the
backbone stays in inference mode because the head calls it with `training=False`) and fine-tunes
at a low learning rate. Both phases use AdamW and early stopping with the best weights restored.
A model without pretrained weights (simple_cnn, or a registry backbone under `--weights none`) has
nothing to freeze, so it trains whole, in one phase with the budget of both.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field

import keras

from benchmark.progress import reporter
from benchmark.training.averaging import AveragedWeights
from benchmark.training.checkpoint import PhaseCheckpoint
from benchmark.training.epoch_feed import phase_data
from benchmark.training.progressive import ProgressiveResizing
from benchmark.training.settings import RecipeSettings
from models import BuiltModel, transformer_layers


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


def freeze(backbone: keras.Model) -> None:
    """Freezes the whole backbone (phase 1)."""
    backbone.trainable = False


def unfreeze_top(backbone: keras.Model, layers: int | str) -> int:
    """Unfreezes the top `layers` layers ("all" for every layer), keeping BatchNormalization frozen.

    Frozen BatchNormalization keeps the ImageNet moving statistics: updating them from a few
    small batches of waste photos would wreck the features the head was trained on.
    Returns the number of layers that hold trainable weights afterwards.
    """
    backbone.trainable = True
    count = len(backbone.layers) if layers == "all" else int(layers)
    boundary = len(backbone.layers) - count
    for index, layer in enumerate(backbone.layers):
        layer.trainable = index >= boundary and not isinstance(
            layer, keras.layers.BatchNormalization
        )
    return sum(1 for layer in backbone.layers if layer.trainable and layer.trainable_weights)


def unfreeze_top_transformer_layers(text_backbone: keras.Model, layers: int) -> int:
    """Unfreezes the top `layers` transformer blocks of a text encoder; embeddings stay frozen."""
    text_backbone.trainable = True
    blocks = transformer_layers(text_backbone)
    chosen = set(id(layer) for layer in blocks[len(blocks) - layers :]) if layers > 0 else set()
    for layer in text_backbone.layers:
        layer.trainable = id(layer) in chosen
    return len(chosen)


def unfreeze_top_blocks(encoder: keras.Model, blocks: list, layers: int | str) -> int:
    """Unfreezes the top `layers` transformer blocks of a keras-hub image encoder ("all": the whole
    encoder).

    Everything outside the chosen blocks stays frozen: patch and position embeddings, the final
    LayerNorm and pooling, as the text encoder's embeddings do (`unfreeze_top_transformer_layers`).
    LayerNorms inside a chosen block train with it; BatchNormalization (none in these encoders)
    never. Returns the number of blocks unfrozen.
    """
    if layers == "all":
        unfreeze_top(encoder, "all")
        return len(blocks)
    count = min(int(layers), len(blocks))
    chosen = blocks[len(blocks) - count :] if count > 0 else []
    encoder.trainable = False  # every variable of every sublayer frozen ...
    encoder._trainable = (
        True  # ... then the containers on the path open again, without touching variables
    )
    for container in encoder._flatten_layers(include_self=False, recursive=True):
        if any(
            block in container._flatten_layers(include_self=False, recursive=True)
            for block in chosen
        ):
            container._trainable = True
    for block in chosen:
        block.trainable = True
        for layer in block._flatten_layers(include_self=True, recursive=True):
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False
    return len(chosen)


def make_optimizer(
    lr: float,
    weight_decay: float,
    schedule: str,
    epochs: int,
    steps_per_epoch: int,
    warmup_epochs: int,
    *,
    ema: bool = False,
    ema_momentum: float = 0.99,
):
    """AdamW at a constant rate, or with a cosine decay fitted to the phase's epoch budget.

    With `ema`, AdamW also keeps a moving average of the weights; `run_phase` makes it the weights
    that are validated and kept (`training.averaging`).
    """
    if schedule == "cosine" and epochs > 0:
        warmup_steps = min(warmup_epochs, max(epochs - 1, 0)) * steps_per_epoch
        decay_steps = max(epochs * steps_per_epoch - warmup_steps, 1)
        learning_rate = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=lr / 10 if warmup_steps else lr,
            decay_steps=decay_steps,
            warmup_target=lr if warmup_steps else None,
            warmup_steps=warmup_steps,
        )
    else:
        learning_rate = lr
    return keras.optimizers.AdamW(
        learning_rate=learning_rate,
        weight_decay=weight_decay,
        use_ema=ema,
        ema_momentum=ema_momentum,
    )


def compile_model(
    model: keras.Model, optimizer, label_smoothing: float, jit_compile: bool | str = False
) -> None:
    """Compiles with weighted cross-entropy (per-sample weights come from the dataset) and plain
    accuracy."""
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing),
        metrics=["accuracy"],
        jit_compile=jit_compile,
    )


def _count(weights) -> int:
    return int(sum(int(w.numpy().size) if hasattr(w, "numpy") else int(w.size) for w in weights))


class EpochTimer(keras.callbacks.Callback):
    """Wall time of each epoch: the first one's excess over the rest is what tracing and compiling
    cost."""

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []
        self._start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


class EpochProgress(keras.callbacks.Callback):
    """Tells the run's progress reporter (`benchmark.progress`) each epoch of phase `phase`.

    It runs before the phase's other callbacks, so an epoch whose bank file a feeder (`feeders`,
    with `stored(epoch)`) is about to compute shows as building the bank while it is computed.
    """

    def __init__(self, phase: str, feeders=()):
        super().__init__()
        self.phase, self.feeders = phase, list(feeders)

    def on_epoch_begin(self, epoch, logs=None):
        building = any(not feeder.stored(epoch) for feeder in self.feeders)
        reporter().epoch_begin(self.phase, epoch + 1, self.params.get("epochs", 0), building)

    def on_epoch_end(self, epoch, logs=None):
        reporter().epoch_end()


class DivergenceGuard(keras.callbacks.Callback):
    """Stops training at the first NaN or infinite batch loss and remembers where.

    Early stopping would otherwise restore the best weights and the cell would be recorded `ok`
    and ranked, hiding that its recipe diverged.
    """

    def __init__(self):
        super().__init__()
        self.epoch, self.where = 0, ""

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)) and not self.where:
            self.where = f"loss {float(loss)} at epoch {self.epoch + 1}, batch {batch + 1}"
            self.model.stop_training = True


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
    single_phase: bool,
) -> TrainingResult:
    """Runs the recipe on a freshly built model; the model ends with the best weights of the last
    phase.

    `single_phase` (the plan's `from_scratch`: nothing pretrained to freeze) trains the whole
    network once with the budget of both phases. With `progressive` (a from-scratch model only),
    the single phase trains a twin of the model that
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
    if progressive is not None and (backbone is not None or not single_phase):
        raise ValueError(
            "progressive resizing needs a network built to train from scratch (RunConfig refuses "
            "others)"
        )

    if single_phase:
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

    if settings.skips_phase2:
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
