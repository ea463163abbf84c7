"""Keras callbacks that put both training phases of a cell on one epoch timeline (MLflow,
TensorBoard).

`train_two_phase` fits each phase separately, and Keras numbers each fit's epochs from 0, so phase 2
would overwrite phase 1's steps. `EpochClock` turns a fit's epoch into the cell's global epoch: with
the cell's backup folder it reads how many epochs the finished phases ran (so a cell resumed in
phase 2, whose phase 1 is skipped, still starts phase 2 at the right step, and a phase resumed
mid-way continues its numbering because Keras restarts the fit at the backed-up epoch); without one
(a tune trial, never resumed) it counts the epochs of earlier fits.
"""

from __future__ import annotations

from pathlib import Path

import keras

from benchmark.training.checkpoint import PhaseCheckpoint


class EpochClock:
    """The global step of an epoch: earlier phases' epochs plus the epoch within this fit."""

    def __init__(self, backups: Path | None = None):
        self.backups = PhaseCheckpoint(backups) if backups is not None else None
        self.offset = 0
        self.phase = 0
        self._fits = 0
        self._next_offset = 0

    def begin_fit(self) -> None:
        if self.backups is not None and self.backups.folder.is_dir():
            finished = self.backups.finished_epochs()
            self.offset, self.phase = sum(finished), len(finished)
        else:
            self.offset, self.phase = self._next_offset, self._fits
        self._fits += 1

    def step(self, epoch: int) -> int:
        self._next_offset = self.offset + epoch + 1
        return self.offset + epoch


class MlflowEpochLogger(keras.callbacks.Callback):
    """Logs each epoch's train/val loss and accuracy (and the phase) at its global step.

    The start of phase 2 is logged as the metric `phase_boundary` (the first fine-tuning step, equal
    to the number of phase-1 epochs, as in the cell record's history).
    """

    def __init__(self, log, backups: Path | None = None):
        super().__init__()
        self.log = log  # log(metrics: dict, step: int), never raises
        self.clock = EpochClock(backups)

    def on_train_begin(self, logs=None) -> None:
        self.clock.begin_fit()
        if self.clock.phase > 0:
            self.log({"phase_boundary": self.clock.offset}, self.clock.offset)

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        values = {key: float(value) for key, value in (logs or {}).items() if _is_number(value)}
        self.log({**values, "phase": self.clock.phase}, self.clock.step(epoch))


class PhasedTensorBoard(keras.callbacks.TensorBoard):
    """Keras' TensorBoard callback with epochs on the cell's global timeline (phase 1 then phase 2).

    Evaluation-vs-iteration scalars are left out: each phase's optimizer counts iterations from 0.
    """

    def __init__(self, log_dir: Path, backups: Path | None = None):
        super().__init__(log_dir=str(log_dir), write_graph=False, profile_batch=0)
        self.clock = EpochClock(backups)

    def on_train_begin(self, logs=None) -> None:
        self.clock.begin_fit()
        super().on_train_begin(logs)

    def on_test_end(self, logs=None) -> None:
        self._pop_writer()

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        super().on_epoch_end(self.clock.step(epoch), logs)


def tensorboard_available() -> bool:
    """Keras writes TensorBoard scalars through the `tensorboard` package, which TensorFlow does not
    install."""
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True


def _is_number(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
