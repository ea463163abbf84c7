"""Zero-shot rows `zeroshot_<clip preset>`: how far a foundation model gets before any fine-tuning.

Each class gets text prompts from templates ("a photo of {class} waste"); CLIP embeds them, the
prompt embeddings of a class are L2-normalised and averaged (CLIP's prompt ensembling), and an
image's class probabilities are the softmax of its cosine similarities to the K class vectors,
times CLIP's learnt logit scale. Nothing is trained. The image side follows the hub contract
("raw": the pipeline resizes once, `ConverterRescaling` applies the preset's converter inside),
and the tokenizer is the preset's. The result is an ordinary image -> softmax Keras model, so the
runner evaluates, saves and profiles it as any other cell.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras
import numpy as np

from models.errors import ModelError
from models.hub import load_preset, preset_unavailable_message
from models.registry import get_entry, register_model
from models.spec import BuiltModel, ModelEntry

DEFAULT_PROMPTS = ("a photo of {class} waste",)
# CLIP presets of keras_hub 0.32 (`CLIPBackbone.presets`) offered as zero-shot rows.
ZERO_SHOT_PRESETS: tuple[tuple[str, int], ...] = (
    ("clip_vit_base_patch16", 224),
    ("clip_vit_base_patch32", 224),
    ("clip_vit_large_patch14", 224),
    ("clip_vit_b_32_laion2b_s34b_b79k", 224),
)
CLIP_SEQUENCE_LENGTH = 77


def class_phrase(class_name: str) -> str:
    """`white-glass` / `white_glass` -> `white glass`: how a caption would say it."""
    return " ".join(class_name.replace("_", " ").replace("-", " ").split())


def prompts_for(class_names: Sequence[str], templates: Sequence[str]) -> list[list[str]]:
    """One list of prompts per class, in class order; every template must hold `{class}`."""
    bad = [t for t in templates if "{class}" not in t]
    if not templates or bad:
        raise ModelError(
            f"zero_shot_prompts must be templates holding '{{class}}', got {list(templates)!r}"
        )
    return [[t.replace("{class}", class_phrase(name)) for t in templates] for name in class_names]


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def class_text_embeddings(
    encode: Callable[[list[str]], np.ndarray], class_names: Sequence[str], templates: Sequence[str]
) -> np.ndarray:
    """(K, D): per class, the mean of its L2-normalised prompt embeddings, normalised again.

    `encode` maps a list of prompts to their (projected) text embeddings, one row per prompt.
    """
    rows = [
        _unit(_unit(np.asarray(encode(prompts), dtype="float32")).mean(axis=0))
        for prompts in prompts_for(class_names, templates)
    ]
    return np.stack(rows).astype("float32")


def clip_prompt_encoder(clip_backbone, tokenizer, sequence_length: int | None = None):
    """`encode(prompts) -> (n, D)` through the preset's tokenizer, text tower, pooler and
    projection.

    Prompts are packed to the text tower's own length (77 for the CLIP presets) unless told
    otherwise.
    """
    import keras_hub

    sequence_length = sequence_length or getattr(
        clip_backbone.text_encoder, "max_sequence_length", CLIP_SEQUENCE_LENGTH
    )
    packer = keras_hub.layers.StartEndPacker(
        start_value=tokenizer.start_token_id,
        end_value=tokenizer.end_token_id,
        pad_value=tokenizer.pad_token_id,
        sequence_length=sequence_length,
    )

    def encode(prompts: list[str]) -> np.ndarray:
        import keras  # noqa: F811 (lazy: importing models must not import TensorFlow)

        token_ids = packer(tokenizer(prompts))
        return keras.ops.convert_to_numpy(
            clip_backbone.get_text_embeddings(keras.ops.convert_to_tensor(token_ids))
        )

    return encode


def zero_shot_model(
    clip_backbone, converter, image_size: int, text_vectors: np.ndarray, name: str
) -> keras.Model:
    """0..255 image -> converter scale/offset -> CLIP image embedding -> class probabilities."""
    import keras  # noqa: F811 (lazy: importing models must not import TensorFlow)

    from models.custom_layers import ConverterRescaling, PromptSimilarity

    inputs = keras.Input(shape=(image_size, image_size, 3), name="image")
    x = ConverterRescaling(
        getattr(converter, "scale", None), getattr(converter, "offset", None), name="hub_converter"
    )(inputs)
    embeddings = clip_backbone.get_vision_embeddings(x)
    scale = float(np.exp(keras.ops.convert_to_numpy(clip_backbone.clip_head.logit_scale)))
    head = PromptSimilarity(
        text_vectors.shape[0], text_vectors.shape[1], scale, dtype="float32", name="head_softmax"
    )
    outputs = head(embeddings)
    head.class_vectors.assign(text_vectors)
    return keras.Model(inputs, outputs, name=name)


def build_zero_shot(
    model_name: str,
    class_names: Sequence[str],
    templates: Sequence[str],
    *,
    weights: str = "imagenet",
    image_size: int | None = None,
) -> BuiltModel:
    """The zero-shot classifier of a `zeroshot_*` entry for these classes (loads the preset:
    one-line error offline)."""
    entry = get_entry(model_name)
    if image_size and image_size != entry.input_size:
        raise ModelError(
            f"{entry.name} runs at its preset's {entry.input_size} px; drop --image-size "
            f"{image_size}"
        )
    import keras_hub

    backbone, converter = load_preset(entry.preset, entry.name, weights)
    try:
        tokenizer = keras_hub.models.CLIPTokenizer.from_preset(entry.preset)
    except Exception as err:  # pragma: no cover - the backbone above fails first when offline
        raise ModelError(preset_unavailable_message(entry.preset, entry.name, err)) from err
    vectors = class_text_embeddings(
        clip_prompt_encoder(backbone, tokenizer), class_names, templates
    )
    model = zero_shot_model(backbone, converter, entry.input_size, vectors, name=entry.name)
    return BuiltModel(model=model, backbone=backbone.vision_encoder, entry=entry, weights=weights)


for _preset, _size in ZERO_SHOT_PRESETS:
    register_model(
        ModelEntry(
            name=f"zeroshot_{_preset}",
            family="zero_shot_clip",
            kind="zero_shot",
            builder=None,
            input_size=_size,
            preprocess="raw",
            fine_tune_layers=0,
            preset=_preset,
            min_input_size=_size,
            max_input_size=_size,
        )
    )
