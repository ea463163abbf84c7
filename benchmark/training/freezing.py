"""Which layers train in each phase: all frozen for the head, the top ones opened for fine-tuning.

Apart from the recipe (`recipe.py`) because the same rules are used outside a training run: the
fine-tune bank cuts a backbone where `unfreeze_top` would, and the model tests check that each
family's layers open as the recipe expects.
"""

from __future__ import annotations

import keras

from models import transformer_layers


def freeze(backbone: keras.Model) -> None:
    """Freezes the whole backbone (phase 1)."""
    backbone.trainable = False


def unfreeze_top(backbone: keras.Model, layers: int | str) -> int:
    """Unfreezes the top `layers` layers ("all" for every layer), keeping BatchNormalization frozen.

    Frozen BatchNormalization keeps the ImageNet moving statistics: updating them from a few
    small batches of waste photos would wreck the features the head was trained on.
    Returns the number of layers that hold trainable weights afterwards.
    """
    backbone.trainable = True
    count = len(backbone.layers) if layers == "all" else int(layers)
    boundary = len(backbone.layers) - count
    for index, layer in enumerate(backbone.layers):
        layer.trainable = index >= boundary and not isinstance(
            layer, keras.layers.BatchNormalization
        )
    return sum(1 for layer in backbone.layers if layer.trainable and layer.trainable_weights)


def unfreeze_top_transformer_layers(text_backbone: keras.Model, layers: int) -> int:
    """Unfreezes the top `layers` transformer blocks of a text encoder; embeddings stay frozen."""
    text_backbone.trainable = True
    blocks = transformer_layers(text_backbone)
    chosen = set(id(layer) for layer in blocks[len(blocks) - layers :]) if layers > 0 else set()
    for layer in text_backbone.layers:
        layer.trainable = id(layer) in chosen
    return len(chosen)


def unfreeze_top_blocks(encoder: keras.Model, blocks: list, layers: int | str) -> int:
    """Unfreezes the top `layers` transformer blocks of a keras-hub image encoder ("all": the whole
    encoder).

    Everything outside the chosen blocks stays frozen: patch and position embeddings, the final
    LayerNorm and pooling, as the text encoder's embeddings do (`unfreeze_top_transformer_layers`).
    LayerNorms inside a chosen block train with it; BatchNormalization (none in these encoders)
    never. Returns the number of blocks unfrozen.
    """
    if layers == "all":
        unfreeze_top(encoder, "all")
        return len(blocks)
    count = min(int(layers), len(blocks))
    chosen = blocks[len(blocks) - count :] if count > 0 else []
    encoder.trainable = False  # every variable of every sublayer frozen ...
    encoder._trainable = (
        True  # ... then the containers on the path open again, without touching variables
    )
    for container in encoder._flatten_layers(include_self=False, recursive=True):
        if any(
            block in container._flatten_layers(include_self=False, recursive=True)
            for block in chosen
        ):
            container._trainable = True
    for block in chosen:
        block.trainable = True
        for layer in block._flatten_layers(include_self=True, recursive=True):
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False
    return len(chosen)
