"""Text and fusion models with the real MiniLM encoder: shapes, L2-normalised branches, offline
errors."""

import keras
import numpy as np
import pytest

from models import (
    BuildSpec,
    ModelError,
    TextConfig,
    build_model,
    load_text_encoder,
    transformer_layers,
)


def text_batch(n=2):
    token_ids = np.array(
        [[101, 3259, 5592, 102, 0, 0], [101, 3221, 5835, 4524, 102, 0]][:n], dtype="int32"
    )
    return {"token_ids": token_ids, "padding_mask": (token_ids > 0).astype("int32")}


@pytest.fixture(scope="module")
def fusion(minilm_path):
    spec = BuildSpec(
        num_classes=3,
        image_size=32,
        weights="none",
        text=TextConfig(encoder=minilm_path, branch_units=16),
    )
    return build_model("fusion_mobilenet_v3_small", spec)


def test_encoder_loads_offline_from_a_hugging_face_folder(minilm_path):
    backbone, tokenizer = load_text_encoder(minilm_path)
    assert backbone.hidden_dim == 384 and len(transformer_layers(backbone)) == 6
    assert list(tokenizer(["paper gift bag"])[0]) == [
        3259,
        5592,
        4524,
    ]  # WordPiece ids of the real vocabulary


def test_missing_encoder_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path))
    with pytest.raises(ModelError) as caught:
        load_text_encoder(str(tmp_path / "no_such_encoder_folder"))
    message = str(caught.value)
    assert "\n" not in message and "--text-encoder" in message and str(tmp_path) in message


def test_text_bert_outputs_probabilities(minilm_path):
    built = build_model("text_bert", BuildSpec(num_classes=4, text=TextConfig(encoder=minilm_path)))
    probabilities = built.model.predict(text_batch(), verbose=0)
    assert probabilities.shape == (2, 4)
    np.testing.assert_allclose(probabilities.sum(1), 1.0, rtol=1e-5)
    assert (
        built.text_backbone is not None and built.backbone is None and built.tokenizer is not None
    )


def test_fusion_branches_are_l2_normalised(fusion):
    batch = {
        "image": np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32"),
        **text_batch(),
    }
    for branch in ("image", "text"):
        probe = keras.Model(fusion.model.inputs, fusion.model.get_layer(f"head_{branch}_l2").output)
        norms = np.linalg.norm(probe.predict(batch, verbose=0), axis=1)
        np.testing.assert_allclose(norms, 1.0, rtol=1e-4)
    assert fusion.model.get_layer("head_concat").output.shape[-1] == 32


def test_phase_two_unfreezes_exactly_the_top_layers_of_both_encoders(fusion):
    from benchmark.training.freezing import freeze, unfreeze_top, unfreeze_top_transformer_layers

    freeze(fusion.backbone)
    freeze(fusion.text_backbone)
    assert not fusion.backbone.trainable_weights and not fusion.text_backbone.trainable_weights
    unfreeze_top(fusion.backbone, 6)
    unfrozen_text = unfreeze_top_transformer_layers(fusion.text_backbone, 2)
    image_layers = fusion.backbone.layers
    trainable_image = [
        layer.name for layer in image_layers if layer.trainable and layer.trainable_weights
    ]
    expected = [
        layer.name
        for layer in image_layers[-6:]
        if layer.trainable_weights and not isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert trainable_image == expected and expected
    blocks = transformer_layers(fusion.text_backbone)
    assert unfrozen_text == 2
    assert [layer.trainable for layer in blocks] == [False] * (len(blocks) - 2) + [True, True]
    trainable_text = {id(w) for w in fusion.text_backbone.trainable_weights}
    top_two = {id(w) for layer in blocks[-2:] for w in layer.trainable_weights}
    assert trainable_text == top_two  # embeddings and lower blocks stay frozen
