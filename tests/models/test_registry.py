"""The registry: names, wildcards, aliases, errors, and that every image model builds and
predicts."""

import dataclasses
import typing

import numpy as np
import pytest

from models import (
    KINDS,
    BuildSpec,
    ModelEntry,
    ModelError,
    build_model,
    get_entry,
    list_image_models,
    list_models,
    register_model,
    resolve_model_names,
)
from models.registry import _REGISTRY

IMAGE_MODELS = list_image_models()


def test_wildcards_and_natural_order():
    assert list_models("mobilenet*") == [
        "mobilenet",
        "mobilenet_v2",
        "mobilenet_v3_large",
        "mobilenet_v3_small",
    ]
    resnets = list_models("resnet*")
    assert resnets.index("resnet50v2") < resnets.index("resnet101v2") < resnets.index("resnet152v2")
    assert "efficientnet_b7" in list_models("efficientnet_b*")
    assert (
        list_models("efficientnet*", exclude=["efficientnet_v2*", "efficientnet_lite*"])[-1]
        == "efficientnet_b7"
    )


def test_keras_class_names_are_case_insensitive_aliases():
    assert get_entry("MobileNetV2").name == "mobilenet_v2"
    assert get_entry("resnet152V2").name == "resnet152v2"
    assert get_entry("EfficientNetV2S").name == "efficientnet_v2_s"


def test_unknown_model_names_close_matches():
    with pytest.raises(ModelError, match="did you mean mobilenet_v2"):
        get_entry("mobilenet_v22")
    with pytest.raises(ModelError, match="matches no registered model"):
        resolve_model_names(["nothing*"])


def test_resolve_keeps_order_and_drops_repeats():
    assert resolve_model_names(["simple_cnn", "mobilenet_v3*", "MobileNetV3Small"]) == [
        "simple_cnn",
        "mobilenet_v3_large",
        "mobilenet_v3_small",
    ]


def test_duplicate_registration_raises():
    entry = get_entry("mobilenet")
    with pytest.raises(ValueError, match="registered twice"):
        register_model(entry)
    assert isinstance(_REGISTRY["mobilenet"], ModelEntry)


def test_every_entry_declares_its_kind_and_the_plan_reads_it():
    from benchmark.plan.model_plan import Kind, model_kind

    assert typing.get_args(Kind) == KINDS
    expected = {
        "mobilenet_v2": "trained_backbone",
        "efficientnet_lite0": "trained_backbone",
        "hub_dinov2_small": "trained_backbone",
        "simple_cnn": "scratch",
        "text_bert": "text",
        "fusion_mobilenet_v2": "fusion",
        "zeroshot_clip_vit_base_patch16": "zero_shot",
        "late_fusion_mobilenet_v2": "late_fusion",
    }
    assert {name: model_kind(get_entry(name)) for name in expected} == expected
    modality = {name: get_entry(name).modality for name in expected}
    assert modality["simple_cnn"] == modality["zeroshot_clip_vit_base_patch16"] == "image"
    assert modality["text_bert"] == "text" and modality["late_fusion_mobilenet_v2"] == "image+text"
    assert not get_entry("simple_cnn").pretrained and get_entry("text_bert").pretrained


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"kind": "pretrained"}, "unknown kind 'pretrained'"),
        ({"kind": "zero_shot", "builder": None}, "needs the keras-hub preset"),
        ({"kind": "late_fusion", "builder": None}, "names the components"),
        ({"builder": None}, "a trained_backbone entry takes a builder"),
        ({"components": ("mobilenet", "text_bert")}, "only a late_fusion entry combines"),
        ({"preprocess": "keras"}, "unknown preprocess contract 'keras'"),
    ],
)
def test_an_entry_that_contradicts_itself_is_refused(fields, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(get_entry("mobilenet"), **fields)


def test_the_built_model_carries_the_entry_it_was_built_from():
    built = build_model("simple_cnn", BuildSpec(num_classes=3, image_size=32, weights="none"))
    assert built.entry is get_entry("simple_cnn")


def test_preprocessing_contracts_per_family():
    contract = {name: get_entry(name).preprocess for name in IMAGE_MODELS}
    for name in ("mobilenet", "mobilenet_v2", "resnet50v2", "resnet101v2", "resnet152v2"):
        assert contract[name] == "tf", name
    for name in (
        "mobilenet_v3_small",
        "mobilenet_v3_large",
        "efficientnet_b0",
        "efficientnet_v2_s",
        "simple_cnn",
    ):
        assert contract[name] == "raw", name
    assert contract["resnet50"] == "caffe"


@pytest.mark.parametrize("name", ["mobilenet_v3_small", "efficientnet_b0", "efficientnet_v2_b0"])
def test_raw_input_families_rescale_inside_the_model(name):
    """These families take 0..255 pixels: their graph must start with a Rescaling layer."""
    built = build_model(name, BuildSpec(num_classes=3, image_size=32, weights="none"))
    kinds = [type(layer).__name__ for layer in built.backbone.layers[:4]]
    assert "Rescaling" in kinds, kinds


@pytest.mark.parametrize(
    "name",
    [
        "simple_cnn",
        "mobilenet",
        "mobilenet_v2",
        "mobilenet_v3_small",
        "resnet50v2",
        "efficientnet_b0",
    ],
)
def test_builders_return_one_probability_per_class(name):
    built = build_model(name, BuildSpec(num_classes=6, image_size=32, weights="none"))
    out = built.model.predict(
        np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32"), verbose=0
    )
    assert out.shape == (2, 6)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)
    assert built.model.layers[-1].dtype_policy.compute_dtype == "float32"


# keras-hub encoders and zero-shot rows need their preset (tests/models/test_hub.py builds tiny
# ones); the ConvNeXt giants take 5-15 s each to build (convnext_tiny stands for the family in
# test_new_families.py).
KERAS_APPLICATIONS = [
    n
    for n in IMAGE_MODELS
    if n != "simple_cnn" and not get_entry(n).preset and get_entry(n).params_m is None
]


@pytest.mark.parametrize("name", KERAS_APPLICATIONS)
def test_every_pretrained_model_builds_with_nested_backbone(name):
    size = max(32, get_entry(name).min_input_size)
    built = build_model(name, BuildSpec(num_classes=4, image_size=size, weights="none"))
    assert built.backbone is not None and built.backbone in built.model.layers
    assert built.model.output_shape == (None, 4)


def test_simple_cnn_defaults_stay_small_and_knobs_change_it():
    from models import SimpleCNNConfig

    default = build_model("simple_cnn", BuildSpec(num_classes=6)).model
    assert default.count_params() <= 1_500_000
    halving = BuildSpec(
        num_classes=6,
        simple_cnn=SimpleCNNConfig(
            base_filters=64,
            filter_strategy="halving",
            filter_size=5,
            conv_activation="mish",
            batch_norm=False,
            dense_units=0,
        ),
    )
    model = build_model("simple_cnn", halving).model
    assert not any(type(layer).__name__ == "BatchNormalization" for layer in model.layers)
    assert model.get_layer("block0_conv0").kernel.shape == (5, 5, 3, 64)
    with pytest.raises(ValueError, match="filter_strategy"):
        SimpleCNNConfig(filter_strategy="tripling")


def test_imagenet_download_failure_is_one_clear_line(monkeypatch, tmp_path):
    """Offline, ImageNet weights fail with the model, the cache folder and the remedies; never
    random weights.
    """
    import keras.src.utils.file_utils as file_utils

    def offline(*args, **kwargs):
        raise Exception(
            "URL fetch failure on https://example.invalid/weights.h5: None -- no network"
        )

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(file_utils, "get_file", offline)
    with pytest.raises(ModelError) as caught:
        build_model("mobilenet_v2", BuildSpec(num_classes=6, image_size=96))
    message = str(caught.value)
    assert "\n" not in message
    assert "mobilenet_v2" in message and str(tmp_path / "models") in message
    assert "--weights none" in message and "KERAS_HOME" in message


def test_missing_weights_file_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        build_model(
            "mobilenet_v2",
            BuildSpec(num_classes=6, image_size=32, weights=str(tmp_path / "nope.h5")),
        )


def test_fusion_entries_exist_for_every_pretrained_image_model():
    pretrained = [n for n in IMAGE_MODELS if get_entry(n).pretrained and not get_entry(n).zero_shot]
    assert set(list_models("fusion_*")) == {f"fusion_{n}" for n in pretrained}
    late = get_entry("late_fusion_mobilenet_v2")
    assert late.components == ("mobilenet_v2", "text_bert") and late.builder is None
    with pytest.raises(ModelError, match="combined from trained mobilenet_v2 and text_bert"):
        build_model("late_fusion_mobilenet_v2", BuildSpec(num_classes=3))


def test_every_entry_pickles_for_an_isolated_cell():
    """An isolated cell's child process gets its plan, and so the entry's builder, by pickle
    (`spawn`): a builder that is a closure failed every pretrained cell of the default run."""
    import pickle

    for name in list_models("*"):
        entry = get_entry(name)
        again = pickle.loads(pickle.dumps(entry))
        assert again.name == entry.name
        assert (again.builder is None) == (entry.builder is None), name
