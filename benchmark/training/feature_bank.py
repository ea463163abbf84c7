"""Phase 1 with augmentation on, at the backbone cost of one cell: an augmented feature bank.

A frozen backbone in inference mode maps a given augmented image to the same pooled vector in
every alpha cell, so the backbone's forward pass over epoch e's augmented training images is the
same work in every cell. The bank does it once: epoch e's features (in epoch e's batch order, with
the labels in that order) are computed when the first cell reaches epoch e and stored as one file
in the run folder; every later cell of the model (same image size, weights, split, augmentation,
batch size and seed) trains its head on them. Only alpha differs between those cells, so their
comparison is paired: each head saw exactly the same augmented images.

Epoch e is rebuilt from `make_dataset(..., epoch=e)`, whose order and draws are a pure function of
(seed, e), so any process (a resumed run, another Slurm array task) computes the same epoch without
replaying the epochs before it. Early stopping never pays for epochs nobody trains: epochs are
computed on demand. Files are written whole and renamed into place (`replace_atomically`), so a
killed writer leaves no epoch that can be read. A file damaged after it was written (a full disk,
a copy cut short) is validated on read, named in one warning line and computed again. Two
processes that need the same missing epoch at once each compute their own copy and the later
rename wins (the copies are the same computation).
"""

from __future__ import annotations

import time
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from benchmark.errors import error_line
from benchmark.io import replace_atomically
from benchmark.output import warn

# float32: a cell on the banks is then the cell trained online (the same draws, the same numbers),
# whichever path `auto` picks. float16 halves memory and disk but rounds every stored value, and the
# rounding steers training elsewhere: on full TrashNet (Lite0, 224 px, alpha 0) float32 banks
# reproduced the online cell's every epoch while float16 ones stopped 4 epochs earlier, 0.8 points
# lower on validation and 1.3 on test (docs/performance.md). `benchmarks/sweep_speed.py
# --bank-dtype float16` measures it.
BANK_DTYPE = "float32"


class FeatureBank:
    """Epoch e's pooled training features and labels, computed on first use and kept in `folder`.

    `epoch_images(e)` is epoch e's training dataset, `(images, one-hot)` batches in the order the
    head will see them; `extractor` maps a batch of images to pooled backbone features.
    """

    def __init__(
        self,
        folder: Path,
        extractor: keras.Model,
        epoch_images: Callable[[int], tf.data.Dataset],
        dtype: str | None = None,
    ):
        self.folder = Path(folder)
        self.extractor = extractor
        self.epoch_images = epoch_images
        self.dtype = dtype or BANK_DTYPE
        self.computed: list[int] = []  # epochs this process computed (the rest were read)
        self.seconds = 0.0  # backbone time this process spent filling the bank

    def path(self, epoch: int) -> Path:
        return self.folder / f"epoch{epoch:03d}.npz"

    def stored_epochs(self) -> list[int]:
        return sorted(int(p.stem[5:]) for p in self.folder.glob("epoch[0-9][0-9][0-9].npz"))

    def epoch(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """(features, labels) of `epoch`: read when stored and whole, else computed and stored."""
        path = self.path(epoch)
        if path.is_file():
            stored = read_epoch(path)
            if stored is not None:
                return stored
        started = time.perf_counter()
        features, labels = [], []
        for images, onehot in self.epoch_images(epoch):
            features.append(np.asarray(self.extractor.predict_on_batch(images), dtype=self.dtype))
            labels.append(np.argmax(np.asarray(onehot), axis=1).astype(np.int32))
        features, labels = np.concatenate(features), np.concatenate(labels)
        replace_atomically(
            path, lambda tmp: np.savez(tmp, features=features, labels=labels), suffix=".npz"
        )
        self.seconds += time.perf_counter() - started
        self.computed.append(epoch)
        return features, labels


# What reading a damaged `.npz` raises: a truncated zip, a bad CRC or deflate stream, a short array.
DAMAGED_FILE_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError)


def read_epoch(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """(features, labels) stored in `path`, or None, after one warning line naming it, when the file
    is damaged: it does not load (a truncated zip), or its arrays do not fit together."""
    try:
        with np.load(path) as stored:
            features, labels = stored["features"], stored["labels"]
        # Pooled features are 2-D; the fine-tune bank stores activation maps (4-D) in the same
        # files.
        if features.ndim < 2 or labels.ndim != 1 or len(features) != len(labels):
            raise ValueError(f"features {features.shape} and labels {labels.shape} do not fit")
    except DAMAGED_FILE_ERRORS as err:
        warn(f"feature-bank file {path} is damaged ({error_line(err)}); computing that epoch again")
        return None
    return features, labels


def bank_cost(num_images: int, feature_dim: int, epochs: int, dtype: str | None = None) -> str:
    """What a bank of `epochs` epochs holds: one epoch in memory at a time, all of them on disk."""
    dtype = dtype or BANK_DTYPE
    per_epoch = num_images * feature_dim * np.dtype(dtype).itemsize
    return (
        f"{epochs} epochs x {num_images} images x {feature_dim} features, {dtype}: "
        f"{per_epoch / 2**20:.1f} MiB in memory (one epoch at a time), up to "
        f"{epochs * per_epoch / 2**20:.1f} MiB on disk"
    )


class BankEpochs(keras.callbacks.Callback):
    """Feeds the head, epoch by epoch, from the bank: the head phase's training data and its
    callback.

    Keras creates the iterator it trains an epoch on after `on_epoch_begin` (it may create and drop
    others; the generator only reads), so `dataset()`'s generator yields the epoch this callback has
    just loaded. The dataset declares its length: with an unknown one, Keras runs one extra step per
    epoch into the end of the data, and that step still advances the optimizer's iteration count,
    which would shift AdamW's bias correction and the learning-rate schedule away from the online
    path's. Before the first epoch (Keras may peek at a batch to build the model under a
    distribution strategy) it yields batches of zeros with the right shapes.
    """

    def __init__(
        self,
        bank: FeatureBank,
        class_weights: np.ndarray,
        batch_size: int,
        feature_dim: int,
        num_images: int,
    ):
        super().__init__()
        self.bank = bank
        self.class_weights = np.asarray(class_weights, dtype=np.float32)
        self.batch_size = batch_size
        self.feature_dim = feature_dim
        self.steps = -(-num_images // batch_size)
        self.current: tuple[np.ndarray, np.ndarray] | None = None

    def on_epoch_begin(self, epoch, logs=None):
        self.current = self.bank.epoch(epoch)

    def stored(self, epoch: int) -> bool:
        """Whether `epoch` is on disk already (else its first read computes it: the progress line
        shows that as building the bank)."""
        return self.bank.path(epoch).is_file()

    def _batches(self):
        num_classes = len(self.class_weights)
        if self.current is None:
            for _ in range(self.steps):
                yield (
                    np.zeros((1, self.feature_dim), np.float32),
                    np.eye(num_classes, dtype=np.float32)[:1],
                    np.ones((1,), np.float32),
                )
            return
        features, labels = self.current
        for start in range(0, len(labels), self.batch_size):
            batch = labels[start : start + self.batch_size]
            yield (
                features[start : start + self.batch_size].astype(np.float32),
                np.eye(num_classes, dtype=np.float32)[batch],
                self.class_weights[batch],
            )

    def dataset(self) -> tf.data.Dataset:
        num_classes = len(self.class_weights)
        return tf.data.Dataset.from_generator(
            self._batches,
            output_signature=(
                tf.TensorSpec((None, self.feature_dim), tf.float32),
                tf.TensorSpec((None, num_classes), tf.float32),
                tf.TensorSpec((None,), tf.float32),
            ),
        ).apply(tf.data.experimental.assert_cardinality(self.steps))
