"""The classification head every image model shares, so backbones are compared on equal terms."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras


@dataclass(frozen=True)
class HeadConfig:
    """Dense blocks between the pooled features and the softmax.

    Args:
        units: widths of the dense blocks (ReLU, each followed by dropout); empty for none.
            Defaults to (256, 128).
        dropout: dropout rate after each block. Defaults to 0.3.
    """

    units: tuple[int, ...] = (256, 128)
    dropout: float = 0.3

    def __post_init__(self) -> None:
        object.__setattr__(self, "units", tuple(int(u) for u in self.units))
        if any(u <= 0 for u in self.units):
            raise ValueError(f"head units must be positive, got {self.units}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


HEAD_PREFIX = "head_"
# BatchNormalization momentum of networks trained from scratch. Keras's 0.99 (0.999 in MobileNetV2)
# suits long training; a small dataset gives a few hundred steps in all, after which those moving
# statistics still lag the weights and inference-mode validation sits near chance (measured on the
# embedded sample: simple_cnn train accuracy 0.53, validation 0.22 after 144 steps at 0.99).
SCRATCH_BN_MOMENTUM = 0.9


def classification_head(features, num_classes: int, config: HeadConfig, prefix: str = HEAD_PREFIX):
    """Dense blocks then a softmax whose dtype stays float32, so mixed precision keeps a stable
    loss."""
    import keras  # noqa: F811 (lazy: importing models must not import TensorFlow)

    x = features
    for i, units in enumerate(config.units):
        x = keras.layers.Dense(units, activation="relu", name=f"{prefix}dense_{i}")(x)
        if config.dropout:
            x = keras.layers.Dropout(config.dropout, name=f"{prefix}dropout_{i}")(x)
    return keras.layers.Dense(
        num_classes, activation="softmax", dtype="float32", name=f"{prefix}softmax"
    )(x)


def attach_head(
    backbone: keras.Model, num_classes: int, config: HeadConfig, name: str, pretrained: bool = True
) -> keras.Model:
    """Wraps a headless backbone: pooled features -> dense blocks -> softmax.

    A pretrained backbone is called with `training=False` so its BatchNormalization layers stay in
    inference mode in both phases (Keras transfer-learning guide): fine-tuning then nudges the
    weights without the small-batch statistics of our data overwriting the ImageNet moving averages.
    A randomly initialised one (`pretrained=False`) has no statistics worth keeping and is trained
    from scratch, so its BatchNormalization must learn them like any network's.
    """
    import keras  # noqa: F811 (lazy: importing models must not import TensorFlow)

    if not pretrained:
        for layer in backbone.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = SCRATCH_BN_MOMENTUM
    inputs = keras.Input(shape=backbone.input_shape[1:], name="image")
    x = backbone(inputs, training=False) if pretrained else backbone(inputs)
    x = keras.layers.GlobalAveragePooling2D(name=f"{HEAD_PREFIX}pool")(x)
    outputs = classification_head(x, num_classes, config)
    return keras.Model(inputs, outputs, name=name)
