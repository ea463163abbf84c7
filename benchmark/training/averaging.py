"""Weight averaging (`--ema`): validate, keep and evaluate the optimizer's moving average of the
weights.

Keras 3 optimizers keep the average themselves (`use_ema=True`: after each step,
avg <- m * avg + (1 - m) * w), but on their own they are no use with this recipe. Validation during
`fit` scores the raw weights; `EarlyStopping(restore_best_weights=True)` snapshots the raw weights;
and although `fit` copies the average into the model at the end (`finalize_variable_values`), it
does so before the callbacks' `on_train_end`, where early stopping puts its raw snapshot back, so
the average is silently thrown away.

`AveragedWeights` therefore swaps the average into the model exactly where it must be looked at:
- for each validation pass (`on_test_begin` / `on_test_end`), so `val_*` in the history and the
  early- stopping monitor are the average's;
- around early stopping's `on_epoch_end` (one callback before it, one after it), so its best
  snapshot, and with it the weights `fit` ends with, are the average at the best epoch.
Between the two `on_epoch_end` callbacks nothing else runs, so the per-epoch backup
(`checkpoint.EpochBackup`, placed after both) always saves the raw weights in the model and the
average in the optimizer's slots, and a resumed cell continues exactly where it stopped.
BatchNormalization statistics are not trainable variables and are not averaged (as in Keras); the
snapshot holds those of the epoch it was taken at.
"""

from __future__ import annotations

import keras


def _optimizer(model: keras.Model):
    """The optimizer holding the average (inside a mixed-precision LossScaleOptimizer when there is
    one)."""
    return getattr(model.optimizer, "inner_optimizer", model.optimizer)


def has_average(model: keras.Model) -> bool:
    optimizer = _optimizer(model)
    return bool(
        getattr(optimizer, "use_ema", False)
        and optimizer.built
        and getattr(optimizer, "_model_variables_moving_average", None)
    )


def average_variables(model: keras.Model) -> list:
    """The optimizer's averaged copies, in the order of `optimizer._trainable_variables`."""
    return list(_optimizer(model)._model_variables_moving_average)


def swap_average(model: keras.Model) -> None:
    """Exchanges the model's trainable weights and their averages, bit for bit (through a numpy
    copy)."""
    optimizer = _optimizer(model)
    for variable, average in zip(
        optimizer._trainable_variables, optimizer._model_variables_moving_average
    ):
        if average is None:
            continue
        raw = keras.ops.convert_to_numpy(variable)
        variable.assign(average)
        average.assign(raw)


class AveragedWeights:
    """The two callbacks that put the average where validation and early stopping look (see the
    module docstring).

    Use `[*before_stopper, stopper, *after_stopper, backup, ...]` via `around(stopper)`.
    """

    def __init__(self):
        self.in_model = False
        self.before, self.after = _SwapIn(self), _SwapOut(self)

    def around(self, stopper: keras.callbacks.Callback) -> list[keras.callbacks.Callback]:
        return [self.before, stopper, self.after]

    def put_in(self, model: keras.Model) -> None:
        if not self.in_model and has_average(model):
            swap_average(model)
            self.in_model = True

    def take_out(self, model: keras.Model) -> None:
        if self.in_model:
            swap_average(model)
            self.in_model = False


class _SwapIn(keras.callbacks.Callback):
    """Before early stopping: the average is in the model for validation and for the stopper's epoch
    end."""

    def __init__(self, owner: AveragedWeights):
        super().__init__()
        self.owner = owner

    def on_test_begin(self, logs=None):
        self.owner.put_in(self.model)

    def on_test_end(self, logs=None):
        self.owner.take_out(self.model)

    def on_epoch_end(self, epoch, logs=None):
        self.owner.put_in(self.model)


class _SwapOut(keras.callbacks.Callback):
    """After early stopping: the raw weights go back in, to train on and to be backed up."""

    def __init__(self, owner: AveragedWeights):
        super().__init__()
        self.owner = owner

    def on_epoch_end(self, epoch, logs=None):
        self.owner.take_out(self.model)
