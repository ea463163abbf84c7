"""Text encoders (keras-hub BERT family) and the text-only classifier `text_bert`.

Captions are short object descriptions (`paper gift bag`), so a small pretrained BERT-family
encoder gives a strong signal. The encoder comes from a keras-hub preset name (downloaded on
first use into the keras-hub/Kaggle cache), a keras-hub preset folder, or a Hugging Face
transformers folder (config.json + model.safetensors + vocab.txt) that keras-hub converts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras

from models.errors import ModelError
from models.head import classification_head
from models.registry import register_model
from models.spec import BuildSpec, BuiltModel, ModelEntry


def kerashub_cache_dir() -> Path:
    """Where keras-hub (through kagglehub) keeps downloaded presets."""
    return Path(os.environ.get("KAGGLEHUB_CACHE") or Path.home() / ".cache" / "kagglehub")


def text_encoder_unavailable_message(encoder: str, cause: BaseException) -> str:
    reason = str(cause).splitlines()[0][:160] if str(cause) else type(cause).__name__
    return (
        f"text encoder {encoder!r} could not be loaded ({reason}); it is not in "
        f"{kerashub_cache_dir()}: pre-fetch it on a connected machine (python run_benchmark.py "
        f"fetch-weights --text-encoder {encoder}), point KAGGLEHUB_CACHE at a filled cache, or "
        "pass --text-encoder with a local keras-hub preset or Hugging Face folder"
    )


def load_text_encoder(encoder: str):
    """Returns `(backbone, tokenizer)` for a preset name or folder, or raises a one-line
    `ModelError`."""
    import keras_hub

    source = (
        str(Path(encoder).expanduser().resolve())
        if Path(encoder).expanduser().exists()
        else encoder
    )
    try:
        backbone = keras_hub.models.Backbone.from_preset(source)
        tokenizer = keras_hub.models.Tokenizer.from_preset(source)
    except (
        Exception
    ) as err:  # network, missing kagglehub, unreadable folder: all mean "not available"
        raise ModelError(text_encoder_unavailable_message(encoder, err)) from err
    return backbone, tokenizer


def text_inputs() -> dict:
    """The symbolic inputs the data pipeline feeds for captions."""
    import keras  # noqa: F811 (lazy: importing models must not import TensorFlow)

    return {
        "token_ids": keras.Input(shape=(None,), dtype="int32", name="token_ids"),
        "padding_mask": keras.Input(shape=(None,), dtype="int32", name="padding_mask"),
    }


def encode_text(backbone: keras.Model, inputs: dict, pooling: str):
    """One vector per caption from a BERT-family backbone, kept in inference mode (see head.py)."""
    import keras  # noqa: F811 (lazy: importing models must not import TensorFlow)

    feed = {"token_ids": inputs["token_ids"], "padding_mask": inputs["padding_mask"]}
    if "segment_ids" in backbone.input:
        # Single-sentence input: every token is segment 0 (DistilBERT has no segments at all).
        feed["segment_ids"] = keras.ops.zeros_like(inputs["token_ids"])
    outputs = backbone(feed, training=False)
    sequence = outputs["sequence_output"] if isinstance(outputs, dict) else outputs
    if pooling == "cls":
        return sequence[:, 0, :]
    mask = keras.ops.expand_dims(keras.ops.cast(inputs["padding_mask"], sequence.dtype), -1)
    return keras.ops.sum(sequence * mask, axis=1) / keras.ops.maximum(
        keras.ops.sum(mask, axis=1), 1.0
    )


def transformer_layers(backbone: keras.Model) -> list:
    """The encoder's transformer blocks, bottom to top (what `fine_tune_layers` counts)."""
    return [layer for layer in backbone.layers if "transformer_layer" in layer.name]


def text_bert(entry: ModelEntry, spec: BuildSpec) -> BuiltModel:
    """Text-only classifier: BERT-family [CLS] embedding -> dense head -> softmax."""
    import keras  # noqa: F811 (lazy: importing models must not import TensorFlow)

    backbone, tokenizer = load_text_encoder(spec.text.encoder)
    inputs = text_inputs()
    features = encode_text(backbone, inputs, spec.text.pooling)
    outputs = classification_head(features, spec.num_classes, spec.head)
    model = keras.Model(inputs, outputs, name=entry.name)
    return BuiltModel(
        model=model,
        backbone=None,
        entry=entry,
        weights=spec.text.encoder,
        text_backbone=backbone,
        tokenizer=tokenizer,
    )


register_model(
    ModelEntry(
        name="text_bert",
        family="text",
        kind="text",
        builder=text_bert,
        input_size=0,  # it sees no images
        preprocess="raw",
        fine_tune_layers=2,
    )
)
