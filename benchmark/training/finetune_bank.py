"""Phase 2 with the frozen lower backbone computed once per epoch: the fine-tune bank.

In phase 2 only the layers above the fine-tune cut train (`unfreeze_top`); everything below is
frozen and, called with `training=False`, in inference mode. For a given augmented image the
activation at the cut is therefore the same in every alpha cell, and the same in every epoch that
sees that image with the same draws. Splitting the backbone there gives a bottom model (image ->
activation at the cut) whose output the feature bank stores once per epoch, and a top model
(activation -> backbone output) that reuses the very layer objects of the built backbone, so
training it trains the real model and the cell's evaluation needs no copying back.

A cut is only usable where the graph allows it: the activation at the cut must be the only tensor
below it that anything above it reads. A residual whose shortcut starts below the cut and joins
above it would need a second stored tensor, so `find_cut` walks down to the nearest clean boundary
(the layers between it and the fine-tune cut are frozen: the top computes them every epoch, which
stays exact) and gives up, with the reason, when there is none. The bank is exact only when the
bottom is deterministic: a dropout or noise layer below the cut (`bottom_randomness`) sends the
cell online.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from benchmark.io import replace_atomically
from benchmark.training import feature_bank
from benchmark.training.feature_bank import BankEpochs
from benchmark.training.head_features import POOL_LAYER

MIB = 2**20  # the banks' sizes are reported and limited (--fine-tune-bank-limit) in MiB

# Layers that draw random numbers in training: their output below the cut would differ per cell.
RANDOM_LAYERS = tuple(
    getattr(keras.layers, name)
    for name in (
        "Dropout",
        "SpatialDropout1D",
        "SpatialDropout2D",
        "SpatialDropout3D",
        "GaussianNoise",
        "GaussianDropout",
        "AlphaDropout",
    )
    if hasattr(keras.layers, name)
)


@dataclass(frozen=True)
class BackboneCut:
    """Where the backbone splits: its operations from `index` on are the top, `tensor` feeds them.

    `index` counts the backbone's operations (`_operations`: its layers and the plain ops between
    them, such as MobileNetV3's `x + 3`), in the graph order `backbone.layers` also follows.
    `moved` counts the frozen layers between this cut and the fine-tune cut (0: at the fine-tune
    cut itself); the top model recomputes them every epoch.
    """

    index: int
    layer: str  # name of the lowest operation of the top model
    tensor: object  # the KerasTensor that crosses the cut
    moved: int = 0


def _nodes(backbone: keras.Model):
    # Keras 3 Functional internals (`_nodes_by_depth`, `_operations`, `_keras_history`), which the
    # tests pin on real backbones: the public API has no view of the graph's edges.
    return [node for nodes in backbone._nodes_by_depth.values() for node in nodes]


def crossing_tensors(backbone: keras.Model, index: int) -> list:
    """Tensors made below operation `index` that an operation at or above it reads (or returns)."""
    below = {id(operation) for operation in backbone._operations[:index]}
    crossing: dict[int, object] = {}
    for node in _nodes(backbone):
        if id(node.operation) in below:
            continue
        for tensor in node.input_tensors:
            if id(tensor._keras_history.operation) in below:
                crossing[id(tensor)] = tensor
    for tensor in keras.tree.flatten(backbone.outputs):
        if id(tensor._keras_history.operation) in below:
            crossing[id(tensor)] = tensor
    return list(crossing.values())


def find_cut(backbone: keras.Model, fine_tune_layers: int | str) -> tuple[BackboneCut | None, str]:
    """The clean cut at or below the fine-tune cut, or None and why there is none.

    `fine_tune_layers` counts layers from the top as `unfreeze_top` does. Only cuts at or below
    the fine-tune cut are exact: a layer that trains must be in the top.
    """
    layers, operations = backbone.layers, backbone._operations
    if len(backbone.inputs) != 1 or len(backbone.outputs) != 1:
        return None, "the backbone has several inputs or outputs"
    if fine_tune_layers == "all" or int(fine_tune_layers) >= len(layers) - 1:
        return None, "the whole backbone trains in phase 2: nothing frozen to store"
    first_trained = layers[len(layers) - int(fine_tune_layers)]
    boundary = next(i for i, operation in enumerate(operations) if operation is first_trained)
    for index in range(boundary, 1, -1):  # index 1: only the input below, nothing saved
        crossing = crossing_tensors(backbone, index)
        if len(crossing) == 1:
            moved = sum(isinstance(op, keras.layers.Layer) for op in operations[index:boundary])
            if moved > int(fine_tune_layers):  # NASNet: cells read the two cells before them
                return None, (
                    f"the nearest clean cut below {first_trained.name!r} is {moved} layers down "
                    f"({operations[index].name!r}): the top would recompute most of the backbone"
                )
            return BackboneCut(index, operations[index].name, crossing[0], moved), ""
    names = ", ".join(t._keras_history.operation.name for t in crossing_tensors(backbone, boundary))
    return None, (
        f"no clean cut at or below {first_trained.name!r}: tensors of {names} cross it "
        "(a residual joins above the cut) all the way down"
    )


def bottom_randomness(backbone: keras.Model, cut: BackboneCut) -> str:
    """The first layer below `cut` that draws random numbers in training ("" for none)."""
    for layer in backbone._operations[: cut.index]:
        seeded = any(
            isinstance(value, keras.random.SeedGenerator) for value in vars(layer).values()
        )
        if isinstance(layer, RANDOM_LAYERS) or seeded:
            return layer.name
    return ""


def split_backbone(backbone: keras.Model, cut: BackboneCut) -> tuple[keras.Model, keras.Model]:
    """(bottom, top) sharing the backbone's layer objects: image -> activation -> output."""
    bottom = keras.Model(backbone.inputs[0], cut.tensor, name=f"{backbone.name}_below_{cut.layer}")
    top = keras.Model(cut.tensor, backbone.outputs[0], name=f"{backbone.name}_from_{cut.layer}")
    return bottom, top


def fine_tune_model(built, top: keras.Model) -> keras.Model:
    """Activation at the cut -> softmax: the backbone's top in inference mode, then the head.

    Every layer is the full model's own, so phase 2 on this model trains the full model; the top
    is called with `training=False` as the full model calls its backbone (BatchNorm stays frozen).
    """
    layers = built.model.layers
    start = [layer.name for layer in layers].index(POOL_LAYER)
    activation = keras.Input(shape=top.inputs[0].shape[1:], name="activation_at_cut")
    x = top(activation, training=False)
    for layer in layers[start:]:
        x = layer(x)
    return keras.Model(activation, x, name=f"{built.model.name}_from_cut")


def activation_shape(cut: BackboneCut) -> tuple[int, ...]:
    return tuple(int(d) for d in cut.tensor.shape[1:])


def bank_bytes(
    shape: tuple[int, ...], num_train: int, num_val: int, epochs: int, dtype: str | None = None
) -> tuple[int, int]:
    """(one epoch in memory, all epochs and the validation set on disk), in bytes."""
    item = int(np.prod(shape)) * np.dtype(dtype or feature_bank.BANK_DTYPE).itemsize
    return num_train * item, (epochs * num_train + num_val) * item


def stored_activations(
    bottom: keras.Model, dataset, path: Path, dtype: str | None = None
) -> np.ndarray:
    """Activations at the cut of an unshuffled, un-augmented dataset (validation), stored once."""
    if not path.is_file():
        parts = [
            np.asarray(bottom.predict_on_batch(element[0]), dtype=dtype or feature_bank.BANK_DTYPE)
            for element in dataset
        ]
        values = np.concatenate(parts)
        replace_atomically(path, lambda tmp: np.save(tmp, values), suffix=".npy")
    return np.load(path).astype(np.float32)


class ActivationEpochs(BankEpochs):
    """`BankEpochs` for activations of any shape, with phase 2's epochs numbered after phase 1's.

    Phase 2's epoch e trains on data epoch `offset + e` (offset: phase 1's epoch budget, the same
    in every cell), so it sees new draws rather than repeating phase 1's, and every alpha cell of
    the model sees the same ones.
    """

    def __init__(
        self,
        bank,
        class_weights,
        batch_size: int,
        shape: tuple[int, ...],
        num_images: int,
        offset: int,
    ):
        super().__init__(bank, class_weights, batch_size, feature_dim=0, num_images=num_images)
        self.shape, self.offset = tuple(shape), int(offset)

    def on_epoch_begin(self, epoch, logs=None):
        self.current = self.bank.epoch(self.offset + epoch)

    def stored(self, epoch: int) -> bool:
        return self.bank.path(self.offset + epoch).is_file()

    def _batches(self):
        if self.current is not None:
            yield from super()._batches()
            return
        num_classes = len(self.class_weights)
        for _ in range(self.steps):  # before the first epoch: shapes only (see BankEpochs)
            yield (
                np.zeros((1, *self.shape), np.float32),
                np.eye(num_classes, dtype=np.float32)[:1],
                np.ones((1,), np.float32),
            )

    def dataset(self) -> tf.data.Dataset:
        num_classes = len(self.class_weights)
        return tf.data.Dataset.from_generator(
            self._batches,
            output_signature=(
                tf.TensorSpec((None, *self.shape), tf.float32),
                tf.TensorSpec((None, num_classes), tf.float32),
                tf.TensorSpec((None,), tf.float32),
            ),
        ).apply(tf.data.experimental.assert_cardinality(self.steps))
