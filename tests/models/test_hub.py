"""keras-hub image encoders, built as tiny random configurations of the real classes (presets need
network).

Pinned here: the preset's converter scale/offset is applied once, inside the model, to raw pixels;
the pooled token reaches `head_pool`; the transformer blocks are found; an unloadable preset is one
line.
"""

import keras
import keras_hub
import numpy as np
import pytest

import models.hub as hub
from models import (
    BuildSpec,
    HeadConfig,
    ModelError,
    TextConfig,
    build_model,
    get_entry,
    list_models,
    preprocess_function,
)
from models.hub import TokenPool, hub_image_model, transformer_blocks

SIZE, LAYERS, DIM = 32, 3, 16
CLIP_MEAN, CLIP_STD = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]


def tiny_encoder(family: str):
    keras.utils.set_random_seed(0)
    common = dict(num_layers=LAYERS, num_heads=2, hidden_dim=DIM)
    if family == "vit":
        return keras_hub.models.ViTBackbone(
            image_shape=(SIZE, SIZE, 3), patch_size=8, mlp_dim=32, **common
        )
    if family == "dinov2":
        return keras_hub.models.DINOV2Backbone(
            patch_size=8,
            intermediate_dim=32,
            image_shape=(SIZE, SIZE, 3),
            position_embedding_shape=(SIZE, SIZE, 3),
            **common,
        )
    if family == "clip":
        return keras_hub.models.CLIPVisionEncoder(
            patch_size=8, intermediate_dim=32, image_shape=(SIZE, SIZE, 3), **common
        )
    return keras_hub.models.SigLIPVisionEncoder(
        patch_size=8, intermediate_dim=32, image_shape=(SIZE, SIZE, 3), **common
    )


def tiny_converter(family: str):
    """Each family's converter kind, with the normalisation its presets use (CLIP: its own
    mean/std)."""
    if family == "clip":
        return keras_hub.layers.CLIPImageConverter(
            image_size=(SIZE, SIZE),
            scale=[1 / (255 * s) for s in CLIP_STD],
            offset=[-m / s for m, s in zip(CLIP_MEAN, CLIP_STD)],
        )
    kind = {
        "vit": keras_hub.layers.ViTImageConverter,
        "dinov2": keras_hub.layers.DINOV2ImageConverter,
        "siglip": keras_hub.layers.SigLIPImageConverter,
    }[family]
    return kind(image_size=(SIZE, SIZE), scale=1 / 127.5, offset=-1.0)


FAMILIES = ["vit", "dinov2", "clip", "siglip"]
SPEC = BuildSpec(num_classes=3, image_size=SIZE, head=HeadConfig(units=(8,), dropout=0.0))


def pixels(n=2):
    return np.random.default_rng(1).uniform(0, 255, (n, SIZE, SIZE, 3)).astype("float32")


@pytest.mark.parametrize("family", FAMILIES)
def test_converter_applied_once_and_pooled_token_reaches_the_head(family):
    encoder, converter = tiny_encoder(family), tiny_converter(family)
    model = hub_image_model(encoder, converter, SIZE, SPEC, name=f"tiny_{family}")
    x = pixels()
    reaching = keras.ops.convert_to_numpy(
        keras.Model(model.input, model.get_layer("hub_converter").output)(x)
    )
    np.testing.assert_allclose(
        reaching, keras.ops.convert_to_numpy(converter(x)), rtol=1e-5, atol=1e-5
    )
    # End to end: pooled features equal the encoder's token on converter(x), so nothing normalises
    # twice.
    pooled = keras.ops.convert_to_numpy(
        keras.Model(model.input, model.get_layer("head_pool").output)(x)
    )
    feed = converter(x)
    expected = keras.ops.convert_to_numpy(
        TokenPool()(encoder({"images": feed} if isinstance(encoder.input, dict) else feed))
    )
    np.testing.assert_allclose(pooled, expected, rtol=1e-4, atol=1e-5)
    assert pooled.shape == (2, DIM)
    probabilities = model.predict(x, verbose=0)
    np.testing.assert_allclose(probabilities.sum(1), 1.0, rtol=1e-5)
    assert len(transformer_blocks(encoder)) == LAYERS


def test_registry_rows_are_raw_and_name_real_presets():
    names = list_models("hub_*")
    families = {get_entry(n).family for n in names}
    assert families == {"hub_vit", "hub_dinov2", "hub_clip", "hub_siglip"}
    known = {
        **keras_hub.models.ViTBackbone.presets,
        **keras_hub.models.DINOV2Backbone.presets,
        **keras_hub.models.CLIPBackbone.presets,
        **keras_hub.models.SigLIPBackbone.presets,
    }
    for name in names:
        entry = get_entry(name)
        assert (
            entry.preset in known
            and entry.preprocess == "raw"
            and preprocess_function(entry.preprocess) is None
        )
        assert f"fusion_{name}" in list_models("fusion_*")
    assert (
        get_entry("hub:vit_base_patch16_224_imagenet").name == "hub_vit_base_patch16_224_imagenet"
    )


def test_unloadable_preset_is_one_clear_line(monkeypatch, tmp_path):
    def offline(*args, **kwargs):
        raise OSError("Couldn't connect to kaggle.com\nmore detail")

    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path))
    monkeypatch.setattr(keras_hub.models.Backbone, "from_preset", offline)
    with pytest.raises(ModelError) as caught:
        build_model("hub_vit_base_patch16_224_imagenet", BuildSpec(num_classes=3))
    message = str(caught.value)
    assert (
        "\n" not in message
        and "vit_base_patch16_224_imagenet" in message
        and str(tmp_path) in message
    )
    assert "fetch-weights --models hub_vit_base_patch16_224_imagenet" in message
    with pytest.raises(ModelError, match="fixed position embeddings"):
        build_model("hub_vit_base_patch16_224_imagenet", BuildSpec(num_classes=3, image_size=64))
    with pytest.raises(ModelError, match="imagenet .* or none"):
        build_model("hub_dinov2_small", BuildSpec(num_classes=3, weights=str(tmp_path / "w.h5")))


@pytest.fixture
def tiny_dinov2_preset(monkeypatch):
    """`hub_dinov2_small`'s real builder, with the preset loader answering a tiny random DINOv2."""
    monkeypatch.setattr(
        hub, "load_preset", lambda *a, **k: (tiny_encoder("dinov2"), tiny_converter("dinov2"))
    )


def test_builder_gives_backbone_blocks_and_cacheable_head(tiny_dinov2_preset):
    from benchmark.training.head_features import feature_extractor, supports_cached_features

    built = build_model("hub_dinov2_small", SPEC)
    assert (
        built.blocks is not None
        and len(built.blocks) == LAYERS
        and built.backbone in built.model.layers
    )
    assert supports_cached_features(built)
    assert feature_extractor(built).output_shape == (None, DIM)


def test_fusion_uses_the_pooled_hub_features(tiny_dinov2_preset, minilm_path):
    spec = BuildSpec(
        num_classes=3, image_size=SIZE, text=TextConfig(encoder=minilm_path, branch_units=8)
    )
    built = build_model("fusion_hub_dinov2_small", spec)
    token_ids = np.array([[101, 3259, 102, 0]], dtype="int32")
    out = built.model.predict(
        {
            "image": pixels(1),
            "token_ids": token_ids,
            "padding_mask": (token_ids > 0).astype("int32"),
        },
        verbose=0,
    )
    assert out.shape == (1, 3) and built.blocks is not None and built.text_backbone is not None
