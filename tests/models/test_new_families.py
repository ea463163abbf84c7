"""Issue 19's Keras families: one row each, and what actually reaches each backbone (its
contract)."""

import keras
import numpy as np
import pytest

from models import BuildSpec, build_model, get_entry, list_models, preprocess_function

MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])
CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68])


def pixels(seed=0, size=8):
    return np.random.default_rng(seed).uniform(0, 255, (2, size, size, 3)).astype("float32")


def test_rows_sizes_depths_and_aliases():
    expected = {
        "densenet121": ("torch", 224),
        "densenet169": ("torch", 224),
        "densenet201": ("torch", 224),
        "convnext_tiny": ("raw", 224),
        "convnext_small": ("raw", 224),
        "convnext_base": ("raw", 224),
        "convnext_large": ("raw", 224),
        "convnext_xlarge": ("raw", 224),
        "xception": ("tf", 299),
        "inception_v3": ("tf", 299),
        "inception_resnet_v2": ("tf", 299),
        "nasnet_mobile": ("tf", 224),
        "vgg16": ("caffe", 224),
    }
    for name, (contract, size) in expected.items():
        entry = get_entry(name)
        assert (entry.preprocess, entry.input_size) == (contract, size), name
        assert entry.fine_tune_layers > 0 and f"fusion_{name}" in list_models("fusion_*")
    assert (
        get_entry("ConvNeXtXLarge").name == "convnext_xlarge"
        and get_entry("InceptionResNetV2").name == "inception_resnet_v2"
    )


@pytest.mark.parametrize("name", ["densenet121", "densenet169", "densenet201"])
def test_densenet_gets_torch_mode(name):
    """x / 255, then ImageNet mean / std, per RGB channel."""
    x = pixels()
    out = keras.ops.convert_to_numpy(preprocess_function(get_entry(name).preprocess)(x.copy()))
    np.testing.assert_allclose(out, (x / 255.0 - MEAN) / STD, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "name", ["xception", "inception_v3", "inception_resnet_v2", "nasnet_mobile"]
)
def test_tf_mode_families(name):
    x = pixels()
    out = keras.ops.convert_to_numpy(preprocess_function(get_entry(name).preprocess)(x.copy()))
    np.testing.assert_allclose(out, x / 127.5 - 1.0, rtol=1e-5, atol=1e-5)


def test_vgg16_gets_caffe_mode():
    x = pixels()
    out = keras.ops.convert_to_numpy(preprocess_function(get_entry("vgg16").preprocess)(x.copy()))
    np.testing.assert_allclose(out, x[..., ::-1] - CAFFE_MEAN_BGR, rtol=1e-5, atol=1e-4)


def test_convnext_takes_raw_pixels_and_normalises_inside():
    """No pipeline function; the backbone's own first layer turns 0..255 into ImageNet-normalised
    values."""
    assert preprocess_function(get_entry("convnext_tiny").preprocess) is None
    built = build_model("convnext_tiny", BuildSpec(num_classes=3, image_size=32, weights="none"))
    first = built.backbone.layers[1]
    assert isinstance(first, keras.layers.Normalization)
    x = pixels(size=32)
    seen = keras.ops.convert_to_numpy(keras.Model(built.backbone.input, first.output)(x))
    np.testing.assert_allclose(seen, (x / 255.0 - MEAN) / STD, rtol=1e-4, atol=1e-4)


def test_inception_minimum_size_is_declared():
    assert (
        get_entry("inception_v3").min_input_size == 75
        and get_entry("xception").min_input_size == 71
    )
    built = build_model("inception_v3", BuildSpec(num_classes=2, image_size=75, weights="none"))
    assert built.model.output_shape == (None, 2)
