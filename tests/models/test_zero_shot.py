"""Zero-shot rows: prompts from class names, and the prompt-to-class wiring through a tiny random
CLIP."""

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from models import BuildSpec, ModelError, build_model, get_entry, list_models
from models.zero_shot import (
    class_text_embeddings,
    clip_prompt_encoder,
    prompts_for,
    zero_shot_model,
)
from tests.models.test_hub import SIZE, tiny_converter

CLASSES = ["cardboard", "white-glass", "plastic_bottle"]
TEMPLATES = ["a photo of {class} waste", "a blurry photo of {class}"]
PROJECTION = 8


def tiny_clip():
    keras.utils.set_random_seed(0)
    vision = keras_hub.models.CLIPVisionEncoder(
        patch_size=8,
        hidden_dim=16,
        num_layers=2,
        num_heads=2,
        intermediate_dim=32,
        image_shape=(SIZE, SIZE, 3),
    )
    text = keras_hub.models.CLIPTextEncoder(
        vocabulary_size=50,
        embedding_dim=16,
        hidden_dim=16,
        num_layers=2,
        num_heads=2,
        intermediate_dim=32,
        max_sequence_length=12,
    )
    return keras_hub.models.CLIPBackbone(vision, text, projection_dim=PROJECTION)


class StubTokenizer:
    """Word -> id in 3..47, start 1, end 49 (the highest id, as CLIP's end token, which the text
    pooler finds)."""

    start_token_id, end_token_id, pad_token_id = 1, 49, 0

    def __call__(self, prompts):
        return tf.ragged.constant([[3 + sum(map(ord, w)) % 45 for w in p.split()] for p in prompts])


def test_prompts_follow_templates_in_class_order():
    assert prompts_for(CLASSES, TEMPLATES)[1] == [
        "a photo of white glass waste",
        "a blurry photo of white glass",
    ]
    with pytest.raises(ModelError, match="holding"):
        prompts_for(CLASSES, ["a photo of waste"])


def test_rigged_text_tower_gives_the_expected_labels():
    """Text tower rigged so every prompt of class k embeds to e_k: the labels must be argmax of the
    image's first K coords."""
    seen = []

    def rigged(prompts):
        seen.extend(prompts)
        rows = np.zeros((len(prompts), PROJECTION), "float32")
        for row, prompt in enumerate(prompts):
            k = next(
                i
                for i, name in enumerate(CLASSES)
                if prompts_for([name], ["{class}"])[0][0] in prompt
            )
            rows[row, k] = 1.0
        return rows

    vectors = class_text_embeddings(rigged, CLASSES, TEMPLATES)
    np.testing.assert_allclose(vectors, np.eye(3, PROJECTION), atol=1e-6)
    assert len(seen) == len(CLASSES) * len(TEMPLATES)
    clip, converter = tiny_clip(), tiny_converter("clip")
    model = zero_shot_model(clip, converter, SIZE, vectors, name="zeroshot_tiny")
    x = np.random.default_rng(3).uniform(0, 255, (16, SIZE, SIZE, 3)).astype("float32")
    probabilities = model.predict(x, verbose=0)
    image = keras.ops.convert_to_numpy(clip.get_vision_embeddings(converter(x)))
    image = image / np.linalg.norm(image, axis=1, keepdims=True)
    scale = float(np.exp(keras.ops.convert_to_numpy(clip.clip_head.logit_scale)))
    logits = scale * image[:, :3]
    expected = np.exp(logits - logits.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    np.testing.assert_allclose(probabilities, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(probabilities.argmax(1), image[:, :3].argmax(1))
    assert len(set(probabilities.argmax(1))) > 1  # the images do not all fall into one class


def test_prompt_encoder_packs_tokens_through_the_text_tower():
    clip = tiny_clip()
    encode = clip_prompt_encoder(clip, StubTokenizer(), sequence_length=12)
    out = encode(["a photo of cardboard waste", "a photo of white glass waste"])
    assert out.shape == (2, PROJECTION) and not np.allclose(out[0], out[1])


def test_zero_shot_rows_are_registered_without_training():
    names = list_models("zeroshot_*")
    assert "zeroshot_clip_vit_base_patch16" in names
    for name in names:
        entry = get_entry(name)
        assert (
            entry.zero_shot
            and entry.preset in keras_hub.models.CLIPBackbone.presets
            and entry.preprocess == "raw"
        )
        assert f"fusion_{name}" not in list_models("fusion_*")
    with pytest.raises(ModelError, match="zero-shot row"):
        build_model("zeroshot_clip_vit_base_patch16", BuildSpec(num_classes=3))


def test_hub_and_zero_shot_models_round_trip_through_keras_files(tmp_path):
    """Saved models are reloaded by predict and the cost profiler: the custom layers must
    deserialize."""
    from models.hub import hub_image_model
    from tests.models.test_hub import SPEC, tiny_encoder

    x = np.random.default_rng(4).uniform(0, 255, (2, SIZE, SIZE, 3)).astype("float32")
    vectors = np.eye(3, PROJECTION, dtype="float32")
    for model in (
        zero_shot_model(tiny_clip(), tiny_converter("clip"), SIZE, vectors, name="zs"),
        hub_image_model(tiny_encoder("siglip"), tiny_converter("siglip"), SIZE, SPEC, name="hub"),
    ):
        path = tmp_path / f"{model.name}.keras"
        model.save(path)
        again = keras.saving.load_model(path, compile=False)
        np.testing.assert_allclose(
            again.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6
        )
