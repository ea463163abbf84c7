"""fetch-weights and the pre-run check know keras-hub presets (hub encoders and zero-shot rows)."""

import keras_hub
import pytest

from benchmark.errors import UsageError
from benchmark.run.fetch_weights import check_weights_available, fetch_weights, image_backbones
from models import ModelError


def offline(*args, **kwargs):
    raise OSError("Couldn't connect to kaggle.com")


def test_presets_needed_by_hub_fusion_and_zero_shot_models():
    assert image_backbones(
        ["fusion_hub_dinov2_small", "zeroshot_clip_vit_base_patch16", "hub_dinov2_small"]
    ) == ["hub_dinov2_small", "zeroshot_clip_vit_base_patch16"]


def test_offline_presets_are_listed_in_one_message(monkeypatch, tmp_path):
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path))
    monkeypatch.setattr(keras_hub.models.Backbone, "from_preset", offline)
    with pytest.raises(UsageError) as caught:
        check_weights_available(
            ["hub_vit_base_patch16_224_imagenet", "zeroshot_clip_vit_base_patch16"],
            "imagenet",
            "unused",
            image_size=64,
        )
    message = str(caught.value)
    assert "\n" not in message and str(tmp_path) in message
    assert "hub_vit_base_patch16_224_imagenet, zeroshot_clip_vit_base_patch16" in message
    with pytest.raises(ModelError, match="fetch-weights --models zeroshot_clip_vit_base_patch16"):
        fetch_weights(["zeroshot_clip_vit_base_patch16"], None)
