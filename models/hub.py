"""keras-hub vision encoders (ViT, DINOv2, CLIP, SigLIP) as image backbones under our shared head.

Registry names are `hub_<preset>` (alias `hub:<preset>`), one table row per preset that keras-hub
0.32 ships. Preprocessing contract: "raw". The data pipeline resizes once, to the preset's image
size, and hands over 0..255 pixels; the model's first layer (`ConverterRescaling`) applies the
preset's own `ImageConverter` scale and offset (its rescale and mean/std normalisation), so the
converter's arithmetic happens exactly once, inside the model, and nothing is resized twice.
The pooled features (class token; SigLIP's attention-pooled vector) go into `head_pool`, so stored
phase-1 features and fusion work as for Keras applications; phase 2 unfreezes the top
`fine_tune_layers` transformer blocks (`transformer_blocks`), as the text encoder does.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras

from models.errors import ModelError
from models.head import HEAD_PREFIX, classification_head
from models.registry import register_model
from models.spec import BuildSpec, BuiltModel, ModelEntry
from models.text import kerashub_cache_dir


def __getattr__(name: str):
    """The custom layers live in `models.custom_layers` (which imports Keras); reachable here
    too."""
    if name in ("ConverterRescaling", "TokenPool", "SERIALIZATION_PACKAGE"):
        from models import custom_layers

        return getattr(custom_layers, name)
    raise AttributeError(name)


@dataclass(frozen=True)
class HubEncoder:
    """One keras-hub preset: family (which part of the backbone is the image encoder), size,
    fine-tune depth.

    `resizable`: the encoder interpolates its position embeddings (DINOv2), so `--image-size` may
    change its input side; the others load fixed-size position embeddings and keep the preset's
    size.
    """

    preset: str
    family: str
    input_size: int
    fine_tune_layers: int = 2
    resizable: bool = False


# Checked against keras_hub 0.32's `<Family>Backbone.presets`; only presets that exist are listed.
HUB_ENCODERS: tuple[HubEncoder, ...] = (
    HubEncoder("vit_base_patch16_224_imagenet", "vit", 224),
    HubEncoder("vit_base_patch16_224_imagenet21k", "vit", 224),
    HubEncoder("vit_large_patch16_224_imagenet", "vit", 224),
    HubEncoder("dinov2_small", "dinov2", 224, resizable=True),
    HubEncoder("dinov2_base", "dinov2", 224, resizable=True),
    HubEncoder("dinov2_large", "dinov2", 224, resizable=True),
    HubEncoder("dinov2_with_registers_base", "dinov2", 224, resizable=True),
    HubEncoder("clip_vit_base_patch16", "clip", 224),
    HubEncoder("clip_vit_base_patch32", "clip", 224),
    HubEncoder("clip_vit_large_patch14", "clip", 224),
    HubEncoder("clip_vit_b_32_laion2b_s34b_b79k", "clip", 224),
    HubEncoder("siglip_base_patch16_224", "siglip", 224),
    HubEncoder("siglip2_base_patch16_224", "siglip", 224),
    HubEncoder("siglip_so400m_patch14_224", "siglip", 224),
)


def preset_unavailable_message(preset: str, model_name: str, cause: BaseException) -> str:
    """One line naming the preset, the cache folder and the remedies (as for missing ImageNet
    weights)."""
    reason = str(cause).splitlines()[0][:160] if str(cause) else type(cause).__name__
    return (
        f"keras-hub preset {preset!r} for {model_name} could not be loaded ({reason}); "
        "it is not in "
        f"{kerashub_cache_dir()}: pre-fetch it on a connected machine "
        "(python run_benchmark.py fetch-weights "
        f"--models {model_name}), point KAGGLEHUB_CACHE at a filled cache, "
        f"or leave {model_name} out of --models "
        "(even --weights none needs the preset's config)"
    )


def load_preset(preset: str, model_name: str, weights: str, image_size: int | None = None):
    """Returns `(backbone, image_converter)` of a keras-hub preset, or raises a one-line
    `ModelError`.

    `weights`: "imagenet" loads the preset's pretrained weights, "none" its architecture only.
    """
    if weights not in ("imagenet", "none"):
        raise ModelError(
            f"--weights {weights!r} does not apply to {model_name}: "
            "keras-hub encoders take imagenet "
            "(the preset's own weights) or none"
        )
    import keras_hub

    kwargs = {"image_shape": (image_size, image_size, 3)} if image_size else {}
    try:
        backbone = keras_hub.models.Backbone.from_preset(
            preset, load_weights=weights == "imagenet", **kwargs
        )
        converter = keras_hub.layers.ImageConverter.from_preset(preset)
    except (
        Exception
    ) as err:  # network, missing kagglehub, unreadable cache: all mean "not available"
        raise ModelError(preset_unavailable_message(preset, model_name, err)) from err
    return backbone, converter


def vision_encoder(backbone: keras.Model) -> keras.Model:
    """The image tower: the backbone itself (ViT, DINOv2) or its `vision_encoder` (CLIP, SigLIP)."""
    return getattr(backbone, "vision_encoder", None) or backbone


def transformer_blocks(encoder: keras.Model) -> list:
    """The encoder's transformer blocks, bottom to top (what `fine_tune_layers` counts for hub
    encoders)."""
    for layer in [encoder, *encoder._flatten_layers(include_self=False, recursive=True)]:
        blocks = getattr(layer, "encoder_layers", None)  # ViTEncoder, CLIP/SigLIPVisionEncoder
        if blocks:
            return list(blocks)
        if type(layer).__name__ == "DINOV2Encoder":
            return list(layer.layers)
    raise ValueError(f"{encoder.name}: no transformer blocks found")


def hub_image_model(
    encoder: keras.Model,
    converter,
    image_size: int,
    spec: BuildSpec,
    name: str,
    pretrained: bool = True,
) -> keras.Model:
    """0..255 image -> converter scale/offset -> encoder -> pooled token (`head_pool`) -> shared
    head.

    The encoder is called in inference mode when pretrained (see `models.head.attach_head`).
    """
    import keras  # noqa: F811 (lazy: importing models must not import TensorFlow)

    from models.custom_layers import ConverterRescaling, TokenPool

    inputs = keras.Input(shape=(image_size, image_size, 3), name="image")
    x = ConverterRescaling(
        getattr(converter, "scale", None), getattr(converter, "offset", None), name="hub_converter"
    )(inputs)
    feed = {"images": x} if isinstance(encoder.input, dict) else x
    features = encoder(feed, training=False) if pretrained else encoder(feed)
    pooled = TokenPool(name=f"{HEAD_PREFIX}pool")(features)
    return keras.Model(inputs, classification_head(pooled, spec.num_classes, spec.head), name=name)


def build_hub_encoder(row: HubEncoder, entry: ModelEntry, spec: BuildSpec) -> BuiltModel:
    """keras-hub vision encoder under the shared head; raw 0..255 input.

    Module-level and bound with `functools.partial`, so a registry entry pickles into an isolated
    cell's child process.
    """
    model_name = entry.name
    size = spec.image_size or row.input_size
    if size != row.input_size and not row.resizable:
        raise ModelError(
            f"{model_name} runs at its preset's {row.input_size} px "
            "(fixed position embeddings); "
            f"drop --image-size {size} or pick a resizable encoder (hub_dinov2_*)"
        )
    backbone, converter = load_preset(
        row.preset,
        model_name,
        spec.weights,
        image_size=size if row.resizable and size != row.input_size else None,
    )
    encoder = vision_encoder(backbone)
    try:
        model = hub_image_model(
            encoder, converter, size, spec, name=model_name, pretrained=spec.weights != "none"
        )
    except ValueError as err:  # a cached preset saved for another input than its row's
        reason = str(err).splitlines()[0][:160] if str(err) else type(err).__name__
        raise ModelError(
            f"keras-hub preset {row.preset!r} for {model_name} does not take {size} px images "
            f"({reason}); its cache in {kerashub_cache_dir()} holds another preset: fetch it "
            f"again (python run_benchmark.py fetch-weights --models {model_name})"
        ) from None
    return BuiltModel(
        model=model,
        backbone=encoder,
        entry=entry,
        weights=spec.weights,
        blocks=transformer_blocks(encoder),
    )


for _row in HUB_ENCODERS:
    register_model(
        ModelEntry(
            name=f"hub_{_row.preset}",
            family=f"hub_{_row.family}",
            kind="trained_backbone",
            builder=functools.partial(build_hub_encoder, _row),
            input_size=_row.input_size,
            preprocess="raw",
            fine_tune_layers=_row.fine_tune_layers,
            preset=_row.preset,
            min_input_size=_row.input_size if not _row.resizable else 28,
            max_input_size=None if _row.resizable else _row.input_size,
        )
    )
