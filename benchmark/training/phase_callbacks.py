"""The Keras callbacks `run_phase` adds to every phase: epoch timing, progress, divergence.

Apart from the recipe (`recipe.py`) because each watches one thing about a phase and none
decides how it trains; the recipe reads what they saw (epoch seconds, where a loss went NaN).
"""

from __future__ import annotations

import math
import time

import keras

from benchmark.progress import reporter


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
