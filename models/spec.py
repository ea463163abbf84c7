"""Plain-data description of what to build, and what a builder hands back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from models.head import HeadConfig
from models.simple_cnn_config import SimpleCNNConfig
from models.text_config import TextConfig

if TYPE_CHECKING:
    import keras

    from models.registry import ModelEntry


@dataclass(frozen=True)
class BuildSpec:
    """Everything a builder needs; plain data so it round-trips through JSON/YAML.

    Args:
        num_classes: one softmax unit per class.
        image_size: square input side in pixels. Defaults to the entry's own size when None.
        weights: "imagenet", "none", or a path to a backbone weights file.
        head: the classification head on top of the backbone.
        simple_cnn: knobs of the from-scratch baseline (ignored by pretrained models).
        text: the text branch of text-only and fusion models.
        cache_weights: whether a checkpoint converted from another framework is saved to the
            weights cache for the next build. False checks it without writing anything (a dry
            run's weight check). Defaults to True.
    """

    num_classes: int
    image_size: int | None = None
    weights: str = "imagenet"
    head: HeadConfig = field(default_factory=HeadConfig)
    simple_cnn: SimpleCNNConfig = field(default_factory=SimpleCNNConfig)
    text: TextConfig = field(default_factory=TextConfig)
    cache_weights: bool = True

    def input_shape(self, default_size: int) -> tuple[int, int, int]:
        size = self.image_size or default_size
        return (size, size, 3)


@dataclass
class BuiltModel:
    """A freshly built, uncompiled model and the parts the training recipe needs to reach.

    Args:
        model: the full classifier (inputs as the data pipeline builds them, softmax output).
        backbone: the nested pretrained sub-model that phase 1 freezes and phase 2 partly
            unfreezes; None for models trained from scratch (one phase).
        entry: the registry entry it was built from.
        weights: which weights the backbone started from ("imagenet", "none" or a path).
        text_backbone: the BERT-family encoder of text and fusion models (frozen in phase 1,
            its top `text.fine_tune_layers` transformer layers unfrozen in phase 2).
        tokenizer: the encoder's tokenizer, which the runner hands to the data pipeline.
        blocks: the transformer blocks of a keras-hub image encoder, bottom to top: phase 2
            unfreezes the top `fine_tune_layers` of these rather than the top layers of
            `backbone.layers`.
    """

    model: keras.Model
    backbone: keras.Model | None
    entry: ModelEntry
    weights: str
    text_backbone: keras.Model | None = None
    tokenizer: object = None
    blocks: list | None = None
