"""Image + text models: early fusion (`fusion_<image-model>`) and late fusion
(`late_fusion_<image-model>`).

Early fusion: image backbone features -> Dense + dropout, text [CLS] -> Dense + dropout, each
L2-normalised so neither modality dominates by scale, concatenated -> softmax. Late fusion is not
a network: it combines the trained image model's and `text_bert`'s probabilities at prediction
time, so its entry only names its components and the runner does the combining.
"""

from __future__ import annotations

from models.registry import build_model, get_entry, list_image_models, register_model
from models.spec import BuildSpec, BuiltModel, ModelEntry
from models.text import encode_text, load_text_encoder, text_inputs


def l2_normalize(x, name: str):
    import keras  # noqa: F811 (lazy: importing models must not import TensorFlow)

    return keras.layers.UnitNormalization(axis=-1, name=name)(x)


def build_fusion(entry: ModelEntry, spec: BuildSpec) -> BuiltModel:
    """Early fusion of the entry's image model's backbone and the text encoder under two branch
    heads.

    Module-level, so a registry entry pickles into an isolated cell's child process.
    """
    import keras  # noqa: F811 (lazy: importing models must not import TensorFlow)

    image_name = entry.image_model
    image_part = build_model(image_name, spec)
    if image_part.backbone is None:
        raise ValueError(f"fusion needs a pretrained image backbone; {image_name} has none")
    text_backbone, tokenizer = load_text_encoder(spec.text.encoder)
    image_input = keras.Input(shape=image_part.model.input_shape[1:], name="image")
    if image_part.blocks is not None:
        # keras-hub encoder: its converter scale/offset, encoder and token pooling, up to
        # `head_pool`.
        pooled = keras.Model(
            image_part.model.input,
            image_part.model.get_layer("head_pool").output,
            name="fusion_image_features",
        )
        image_features = pooled(image_input)
    else:
        image_features = keras.layers.GlobalAveragePooling2D(name="fusion_image_pool")(
            image_part.backbone(image_input, training=False)
        )
    inputs = {"image": image_input, **text_inputs()}
    text_features = encode_text(text_backbone, inputs, spec.text.pooling)
    branches = []
    for modality, features in (("image", image_features), ("text", text_features)):
        x = keras.layers.Dense(
            spec.text.branch_units, activation="relu", name=f"head_{modality}_dense"
        )(features)
        x = keras.layers.Dropout(spec.text.branch_dropout, name=f"head_{modality}_dropout")(x)
        branches.append(l2_normalize(x, name=f"head_{modality}_l2"))
    joined = keras.layers.Concatenate(name="head_concat")(branches)
    outputs = keras.layers.Dense(
        spec.num_classes, activation="softmax", dtype="float32", name="head_softmax"
    )(joined)
    model = keras.Model(inputs, outputs, name=entry.name)
    return BuiltModel(
        model=model,
        backbone=image_part.backbone,
        entry=entry,
        weights=image_part.weights,
        text_backbone=text_backbone,
        tokenizer=tokenizer,
        blocks=image_part.blocks,
    )


def register_fusion_models() -> None:
    """Adds `fusion_<m>` and `late_fusion_<m>` for every pretrained image model in the registry."""
    for image_name in list_image_models():
        image = get_entry(image_name)
        if image.kind != "trained_backbone":  # scratch or zero-shot: no pretrained backbone to fuse
            continue
        register_model(
            ModelEntry(
                name=f"fusion_{image_name}",
                family=f"fusion_{image.family}",
                kind="fusion",
                builder=build_fusion,
                input_size=image.input_size,
                preprocess=image.preprocess,
                fine_tune_layers=image.fine_tune_layers,
                image_model=image_name,
                min_input_size=image.min_input_size,
                max_input_size=image.max_input_size,
                preset=image.preset,
            )
        )
        register_model(
            ModelEntry(
                name=f"late_fusion_{image_name}",
                family=f"late_fusion_{image.family}",
                kind="late_fusion",
                builder=None,
                input_size=image.input_size,
                preprocess=image.preprocess,
                fine_tune_layers=0,
                components=(image_name, "text_bert"),
            )
        )
