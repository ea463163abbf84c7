"""The optimizer and loss every phase trains with: AdamW (constant or cosine, optionally averaged)
and class-weighted cross-entropy.

Apart from the recipe (`recipe.py`) so that the optimisation is decided in one place (a new
optimizer or loss touches this file only), and so that tests can compile a model exactly as a phase
does without running one.
"""

from __future__ import annotations

import keras


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
