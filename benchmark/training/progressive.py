"""Progressive resizing: a from-scratch network trains on small images early and on the full size
late.

An epoch at side s costs about (s / full)^2 of a full-size one on a convolutional network, so the
early epochs, which only learn coarse shapes and colours, are bought cheaply and the budget holds
more epochs, or a larger final size (fastai's recipe; FixRes explains why the last epochs must be
at the evaluated size). Validation, test, predict and export always see the full `image_size`:
only the training batches are resized, after augmentation and before the family's `preprocess`,
to the side a `tf.Variable` holds, which a callback sets at the start of each epoch.

The network trains through a twin that shares every layer (and so every weight) with the built
model but takes any image side; the built model, with its fixed input, is what is evaluated,
saved and exported. Only the networks built to train from scratch take it (simple_cnn): a
pretrained backbone's features depend on the input size it was trained at, and a registry
backbone nests a model of fixed input size even under `--weights none`.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from models import ModelError


def stage_sides(sizes: list[int] | tuple[int, ...], final: int, epochs: int) -> list[int]:
    """The training side of each epoch: `sizes` then `final`, each for an equal share of `epochs`.

    The last epoch is always at `final`, even when there are fewer epochs than stages.
    """
    stages = [*sizes, final]
    sides = [
        stages[min(len(stages) - 1, epoch * len(stages) // max(epochs, 1))]
        for epoch in range(epochs)
    ]
    return [*sides[:-1], final] if sides else []


class ProgressiveResizing:
    """The sides of one cell: the variable the training dataset reads, and the callback that sets it
    per epoch.

    The schedule is made by `callback(epochs)`, from the epoch budget of the phase that trains, so
    the recipe stays the one place that decides how many epochs there are.
    """

    def __init__(self, sizes: list[int] | tuple[int, ...], final: int):
        self.sizes, self.final = tuple(sizes), int(final)
        # Made outside any distribution strategy's scope (tf.init_scope does not leave one): a plain
        # host variable that tf.data reads, not a mirrored one.
        self.side = tf.Variable(
            self.sizes[0] if self.sizes else self.final,
            dtype=tf.int32,
            trainable=False,
            name="progressive_side",
        )

    def callback(self, epochs: int) -> keras.callbacks.Callback:
        """Sets each of `epochs` epochs' side (`stage_sides`) before it starts, and the full side
        after training.
        """
        return _SetSide(self.side, stage_sides(self.sizes, self.final, epochs), self.final)

    @staticmethod
    def training_model(model: keras.Model) -> keras.Model:
        """A twin of `model` that shares all its layers but takes images of any side."""
        inputs = keras.Input((None, None, model.input_shape[-1]))
        try:
            return keras.models.clone_model(
                model, input_tensors=inputs, clone_function=lambda layer: layer
            )
        except (ValueError, TypeError) as err:
            raise ModelError(
                f"--progressive-sizes: {model.name} cannot take other image sides ({err})"
            ) from err


class _SetSide(keras.callbacks.Callback):
    """Sets the side before each epoch (absolute epoch numbers, so a resumed phase picks up its
    stage).
    """

    def __init__(self, side: tf.Variable, schedule: list[int], final: int):
        super().__init__()
        self.side, self.schedule, self.final = side, schedule, final

    def on_epoch_begin(self, epoch, logs=None):
        self.side.assign(self.schedule[epoch] if 0 <= epoch < len(self.schedule) else self.final)

    def on_train_end(self, logs=None):
        self.side.assign(self.final)
