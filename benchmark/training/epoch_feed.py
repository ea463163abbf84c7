"""Online training on the same epochs the feature banks store: epoch e is a pure function of e.

A `tf.data` pipeline reshuffled and re-augmented on every pass makes epoch e's draws depend on the
e - 1 passes before it: a resumed cell starts the sequence again, and an online cell sees other
images than a cell of the same model whose phases read the feature banks (they store
`make_dataset(..., epoch=e)`). `EpochFeed` trains online on exactly those stand-alone epochs:
phase 1's epoch e reads data epoch e and phase 2's epoch e reads data epoch `initial_epochs + e`,
as the fine-tune bank does. Online and banked cells of one model and seed then see the same
augmented images in the same order, so their comparison is paired, and a cell resumed after a kill
trains the epochs it would have trained.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import tensorflow as tf


class EpochFeed(keras.callbacks.Callback):
    """Feeds `fit` epoch by epoch from `epoch_data(offset + e)`: a training dataset and callback.

    Keras creates the iterator it trains an epoch on after `on_epoch_begin` (as `BankEpochs` relies
    on too), so `dataset()`'s generator yields the epoch this callback has just chosen; before the
    first epoch (Keras may peek at a batch) it yields epoch `offset`. The dataset declares its
    length so Keras never runs an extra step into the end of the data, which would shift the
    optimizer's step count and its learning-rate schedule.
    """

    def __init__(
        self, epoch_data: Callable[[int], tf.data.Dataset], steps: int, offset: int = 0
    ) -> None:
        super().__init__()
        self.epoch_data, self.steps, self.offset = epoch_data, int(steps), int(offset)
        self.current: tf.data.Dataset | None = None  # the epoch being read (`dataset`, each epoch)
        self.epochs_read: list[int] = []  # the data epochs this feed trained on, in order

    def from_epoch(self, offset: int) -> EpochFeed:
        """The same data, numbered from data epoch `offset` (phase 2 starts after phase 1's)."""
        return EpochFeed(self.epoch_data, self.steps, offset)

    def on_epoch_begin(self, epoch, logs=None):
        self.current = self.epoch_data(self.offset + epoch)
        self.epochs_read.append(self.offset + epoch)

    def _batches(self):
        yield from self.current

    def dataset(self) -> tf.data.Dataset:
        # Epoch `offset`: its element spec, and what Keras reads if it peeks before epoch 0.
        self.current = self.epoch_data(self.offset)
        return (
            tf.data.Dataset.from_generator(
                self._batches, output_signature=self.current.element_spec
            )
            .apply(tf.data.experimental.assert_cardinality(self.steps))
            .prefetch(tf.data.AUTOTUNE)
        )


def phase_data(train, offset: int) -> tuple[object, list]:
    """(dataset, callbacks) one phase trains on: an `EpochFeed` from data epoch `offset`, or a plain
    dataset as given (tests and callers that bring their own)."""
    if isinstance(train, EpochFeed):
        feed = train.from_epoch(offset)
        return feed.dataset(), [feed]
    return train, []
