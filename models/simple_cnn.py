"""A from-scratch baseline CNN with the knobs a prior TrashNet study swept.

It has no pretrained backbone, so the two-phase recipe collapses into one phase for it (the
results record says so). It rescales 0..255 input itself, so its contract is "raw".
"""

from __future__ import annotations

from models.head import HEAD_PREFIX, SCRATCH_BN_MOMENTUM
from models.registry import register_model
from models.spec import BuildSpec, BuiltModel, ModelEntry


def simple_cnn(entry: ModelEntry, spec: BuildSpec) -> BuiltModel:
    """From-scratch CNN baseline (conv blocks -> global pooling -> dense -> softmax)."""
    import keras  # noqa: F811 (lazy: importing models must not import TensorFlow)

    cfg = spec.simple_cnn
    inputs = keras.Input(shape=spec.input_shape(entry.input_size), name="image")
    x = keras.layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)
    for block, filters in enumerate(cfg.block_filters()):
        for conv in range(cfg.convs_per_block):
            x = keras.layers.Conv2D(
                filters,
                cfg.filter_size,
                padding="same",
                use_bias=not cfg.batch_norm,
                name=f"block{block}_conv{conv}",
            )(x)
            if cfg.batch_norm:
                x = keras.layers.BatchNormalization(
                    momentum=SCRATCH_BN_MOMENTUM, name=f"block{block}_bn{conv}"
                )(x)
            x = keras.layers.Activation(cfg.conv_activation, name=f"block{block}_act{conv}")(x)
        x = keras.layers.MaxPooling2D(2, padding="same", name=f"block{block}_pool")(x)
    x = keras.layers.GlobalAveragePooling2D(name=f"{HEAD_PREFIX}pool")(x)
    if cfg.dense_units:
        if cfg.dropout:
            x = keras.layers.Dropout(cfg.dropout, name=f"{HEAD_PREFIX}dropout_in")(x)
        x = keras.layers.Dense(
            cfg.dense_units, activation=cfg.dense_activation, name=f"{HEAD_PREFIX}dense"
        )(x)
    if cfg.dropout:
        x = keras.layers.Dropout(cfg.dropout, name=f"{HEAD_PREFIX}dropout_out")(x)
    outputs = keras.layers.Dense(
        spec.num_classes, activation="softmax", dtype="float32", name=f"{HEAD_PREFIX}softmax"
    )(x)
    model = keras.Model(inputs, outputs, name=entry.name)
    return BuiltModel(model=model, backbone=None, entry=entry, weights="none")


register_model(
    ModelEntry(
        name="simple_cnn",
        family="scratch",
        kind="scratch",
        builder=simple_cnn,
        input_size=128,
        preprocess="raw",
        fine_tune_layers=0,
    )
)
