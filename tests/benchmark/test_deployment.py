"""Deployment profile on 32 px models trained for a few steps on colour-coded images (class k
= channel k bright).

Training matters: an untrained network outputs near-uniform probabilities, where a float16 rounding
flips the argmax and agreement with Keras would test nothing. Each model is profiled once per
module.
"""

import sys

import keras
import numpy as np
import pytest

from benchmark.deployment import exports
from benchmark.deployment import profile as profile_module
from benchmark.deployment.profile import (
    DEPLOYMENT_COLUMNS,
    FLOAT_TOLERANCE,
    count_gflops,
    profile_model,
)
from benchmark.deployment.run_costs import (
    cost_columns,
    deployment_frame,
    profile_dir,
    stored_profile,
)
from benchmark.io import write_json_atomic
from benchmark.run.records import CellRecord

NUM_CLASSES = 3
FAST = {"repeats": 3, "warmup": 1}


def colour_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """0..255 images whose class is the brightest channel: learnable in a few steps by any CNN."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % NUM_CLASSES
    images = rng.uniform(0, 120, (n, 32, 32, 3)).astype("float32")
    images[np.arange(n), :, :, labels] += 120
    return images, labels


def trained(model: keras.Model, epochs: int) -> keras.Model:
    keras.utils.set_random_seed(0)
    images, labels = colour_images(96, seed=1)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    model.fit(images, labels, batch_size=16, epochs=epochs, verbose=0)
    return model


def tiny_cnn() -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(16, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(NUM_CLASSES, activation="softmax")(x))


def mobilenet_v3_small() -> keras.Model:
    """The model the issue measured; BatchNorm statistics follow the batches (momentum 0) so a short
    fit shows."""
    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV3Small(
        weights=None,
        input_shape=(32, 32, 3),
        include_top=True,
        classes=NUM_CLASSES,
        dropout_rate=0.0,
    )
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.0
    return model


def profile(model: keras.Model, tmp_path_factory, name: str) -> profile_module.DeploymentProfile:
    for module in ("ai_edge_litert", "tf2onnx", "onnxruntime"):
        pytest.importorskip(module)
    test_images, test_labels = colour_images(40, seed=2)
    train_images, _ = colour_images(16, seed=3)
    return profile_model(
        model, test_images, test_labels, train_images, tmp_path_factory.mktemp(name), **FAST
    )


@pytest.fixture(scope="module")
def cnn_profile(tmp_path_factory):
    return profile(trained(tiny_cnn(), epochs=4), tmp_path_factory, "cnn")


@pytest.fixture(scope="module")
def mobilenet_profile(tmp_path_factory):
    return profile(trained(mobilenet_v3_small(), epochs=4), tmp_path_factory, "mobilenet")


@pytest.fixture(params=["cnn", "mobilenet"])
def any_profile(request):
    return request.getfixturevalue(f"{request.param}_profile")


def variants_by_key(result) -> dict:
    return {(v.format, v.precision): v for v in result.variants}


def test_every_variant_is_built_and_float_exports_agree_with_keras(any_profile):
    variants = variants_by_key(any_profile)
    assert sorted(variants) == sorted(
        [
            ("keras", "float32"),
            ("tflite", "float32"),
            ("tflite", "float16"),
            ("tflite", "int8_dynamic"),
            ("tflite", "int8_full"),
            ("onnx", "float32"),
            ("onnx", "int8_dynamic"),
        ]
    )
    for variant in variants.values():
        assert variant.status == "ok", (variant.format, variant.precision, variant.error)
        if variant.precision in FLOAT_TOLERANCE:
            assert variant.agreement_with_keras == 1.0, (variant.format, variant.precision)
            assert variant.max_abs_diff <= FLOAT_TOLERANCE[variant.precision]
    assert (
        variants[("keras", "float32")].test_accuracy >= 0.9
    )  # the colour task is learnt: argmax means something


def test_sizes_and_speeds_are_positive(any_profile):
    for variant in any_profile.variants:
        assert variant.size_mb > 0 and variant.infer_ms_b1 > 0 and variant.infer_img_s_b32 > 0
        assert 0 <= variant.test_accuracy <= 1 and 0 <= variant.agreement_with_keras <= 1
    assert any_profile.params_m > 0 and any_profile.keras_size_mb > 0 and any_profile.gflops > 0
    assert any_profile.device


def test_reduced_precision_files_are_smaller(mobilenet_profile):
    # Not asserted on the 1.4k-parameter CNN: there ONNX's quantisation scales outweigh the saved
    # weight bytes.
    variants = variants_by_key(mobilenet_profile)
    for fmt, precisions in (
        ("tflite", ["float16", "int8_dynamic", "int8_full"]),
        ("onnx", ["int8_dynamic"]),
    ):
        for precision in precisions:
            assert variants[(fmt, precision)].size_mb < variants[(fmt, "float32")].size_mb, (
                fmt,
                precision,
            )
    assert (
        variants[("tflite", "int8_dynamic")].size_mb
        < 0.35 * variants[("tflite", "float32")].size_mb
    )


def test_keras_size_is_the_weights_without_optimizer_state(mobilenet_profile):
    weights_mb = (
        mobilenet_profile.params_m * 4
    )  # float32 bytes; Adam's slots would add twice as much again
    assert weights_mb < mobilenet_profile.keras_size_mb < 1.2 * weights_mb


def test_conv_flops_match_the_analytic_count(mobilenet_profile):
    """Two FLOPs per multiply-add plus the bias, counted by hand for a 3x3 convolution (not by the
    profiler again)."""
    model = keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3)]
    )  # 6x6x4 outputs, 27 MACs each
    gflops, error = count_gflops(model)
    assert error == "" and gflops * 1e9 == pytest.approx(2 * 6 * 6 * 4 * 27 + 6 * 6 * 4)
    assert (
        1e-3 < mobilenet_profile.gflops < 1e-2
    )  # ~4.5 MFLOPs at 32 px (the 224 px network is ~0.12 GFLOPs)


def test_stored_profile_feeds_the_declared_columns(cnn_profile, tmp_path):
    """The path a run takes: the stored per-model profile -> leaderboard cost columns and
    deployment.csv rows."""
    record = CellRecord(
        cell_id="cnn_tiny__alpha0.5__seed0", index=0, model="cnn_tiny", alpha=0.5, seed=0
    )
    write_json_atomic(profile_dir(tmp_path) / "cnn_tiny.json", stored_profile(cnn_profile, record))
    rows = deployment_frame(tmp_path)
    assert list(rows.columns) == DEPLOYMENT_COLUMNS and len(rows) == len(cnn_profile.variants)
    assert (rows["model"] == "cnn_tiny").all() and (rows["alpha"] == 0.5).all()
    assert list(rows["format"]) == [v.format for v in cnn_profile.variants]
    (cost,) = cost_columns(tmp_path).to_dict("records")
    assert (
        cost["size_mb"] == cnn_profile.keras_size_mb
        and cost["infer_ms_b1"] == cnn_profile.infer_ms_b1
    )
    assert (
        cost["gflops"] == cnn_profile.gflops
        and cost["infer_img_s_b32"] == cnn_profile.infer_img_s_b32
    )


def test_dense_flops_are_two_per_multiply_add_plus_the_bias():
    model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(10)])
    gflops, error = count_gflops(model)
    assert error == "" and gflops * 1e9 == pytest.approx(2 * 20 * 10 + 10)


def test_conv_flops_are_two_per_multiply_add():
    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(8, 3, padding="same")])
    macs = 32 * 32 * 8 * 3 * 3 * 3
    gflops, _ = count_gflops(model)
    assert (
        2 * macs <= gflops * 1e9 <= 2 * macs + 32 * 32 * 8
    )  # plus at most one add per output for the bias


def test_missing_packages_and_no_calibration_images_skip_their_variants(monkeypatch, tmp_path):
    monkeypatch.setitem(
        sys.modules, "onnxruntime", None
    )  # makes `import onnxruntime` raise ImportError
    images, labels = colour_images(8, seed=2)
    result = profile_model(
        tiny_cnn(), images, labels, images[:0], tmp_path, formats=("tflite", "onnx"), **FAST
    )
    variants = variants_by_key(result)
    assert ("keras", "float32") not in variants and result.infer_ms_b1 > 0  # measured, not listed
    for precision in ("float32", "int8_dynamic"):
        assert variants[("onnx", precision)].status == "skipped"
        assert "onnxruntime not installed" in variants[("onnx", precision)].error
    assert variants[("tflite", "int8_full")].status == "skipped"
    assert "representative" in variants[("tflite", "int8_full")].error

    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    result = profile_model(
        tiny_cnn(), images, labels, images, tmp_path / "no_litert", formats=("tflite",), **FAST
    )
    assert {v.status for v in result.variants} == {"skipped"}
    assert all("ai-edge-litert not installed" in v.error for v in result.variants)


def test_a_failed_conversion_is_a_row_and_the_profile_goes_on(monkeypatch, tmp_path):
    pytest.importorskip("ai_edge_litert")
    real_convert = exports._convert_tflite

    def convert(saved_model, precision, calibration):
        if precision == "float16":
            raise RuntimeError("converter exploded\nsecond line")
        return real_convert(saved_model, precision, calibration)

    monkeypatch.setattr(exports, "_convert_tflite", convert)
    images, labels = colour_images(8, seed=2)
    result = profile_model(
        tiny_cnn(), images, labels, images, tmp_path, formats=("tflite",), **FAST
    )
    variants = variants_by_key(result)
    assert variants[("tflite", "float16")].status == "failed"
    assert (
        variants[("tflite", "float16")].error
        == "conversion failed: RuntimeError: converter exploded second line"
    )
    assert variants[("tflite", "float32")].status == "ok"


def test_a_float_export_that_drifts_from_keras_is_flagged_mismatch(monkeypatch, tmp_path):
    pytest.importorskip("ai_edge_litert")
    real_predict = exports._litert_predict

    def drifting(interpreter_class, path, batch_size):
        predict = real_predict(interpreter_class, path, batch_size)
        return lambda batch: predict(batch) + 0.1

    monkeypatch.setattr(exports, "_litert_predict", drifting)
    images, labels = colour_images(8, seed=2)
    result = profile_model(
        tiny_cnn(), images, labels, images[:0], tmp_path, formats=("tflite",), **FAST
    )
    float32 = variants_by_key(result)[("tflite", "float32")]
    assert float32.status == "mismatch" and "max |output - Keras|" in float32.error
    assert float32.infer_ms_b1 > 0 and float32.max_abs_diff == pytest.approx(
        0.1, abs=1e-3
    )  # figures kept
    assert (
        variants_by_key(result)[("tflite", "int8_dynamic")].status == "ok"
    )  # quantised: no tolerance
