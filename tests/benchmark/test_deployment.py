"""Deployment profile on 32 px models trained for a few steps on colour-coded images (class k = channel k bright).

Training matters: an untrained network outputs near-uniform probabilities, where a float16 rounding
flips the argmax and agreement with Keras would test nothing. Each model is profiled once per module.
"""
import sys

import keras
import numpy as np
import pytest

from benchmark import deployment
from benchmark.deployment import (DEPLOYMENT_COLUMNS, FLOAT_TOLERANCE, SUMMARY_COLUMNS, count_gflops,
                                  deployment_rows, deployment_table, profile_model, summary_columns)

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
    """The model the issue measured; BatchNorm statistics follow the batches (momentum 0) so a short fit shows."""
    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV3Small(weights=None, input_shape=(32, 32, 3), include_top=True,
                                                classes=NUM_CLASSES, dropout_rate=0.0)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.0
    return model


def profile(model: keras.Model, tmp_path_factory, name: str) -> deployment.DeploymentProfile:
    for module in ("ai_edge_litert", "tf2onnx", "onnxruntime"):
        pytest.importorskip(module)
    test_images, test_labels = colour_images(40, seed=2)
    train_images, _ = colour_images(16, seed=3)
    return profile_model(model, test_images, test_labels, train_images, tmp_path_factory.mktemp(name), **FAST)


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
    assert sorted(variants) == sorted([("keras", "float32"), ("tflite", "float32"), ("tflite", "float16"),
                                       ("tflite", "int8_dynamic"), ("tflite", "int8_full"),
                                       ("onnx", "float32"), ("onnx", "int8_dynamic")])
    for variant in variants.values():
        assert variant.status == "ok", (variant.format, variant.precision, variant.error)
        if variant.precision in FLOAT_TOLERANCE:
            assert variant.agreement_with_keras == 1.0, (variant.format, variant.precision)
            assert variant.max_abs_diff <= FLOAT_TOLERANCE[variant.precision]
    assert variants[("keras", "float32")].test_accuracy >= 0.9  # the colour task is learnt: argmax means something


def test_sizes_and_speeds_are_positive(any_profile):
    for variant in any_profile.variants:
        assert variant.size_mb > 0 and variant.infer_ms_b1 > 0 and variant.infer_img_s_b32 > 0
        assert 0 <= variant.test_accuracy <= 1 and 0 <= variant.agreement_with_keras <= 1
    assert any_profile.params_m > 0 and any_profile.keras_size_mb > 0 and any_profile.gflops > 0
    assert any_profile.device


def test_reduced_precision_files_are_smaller(mobilenet_profile):
    # Not asserted on the 1.4k-parameter CNN: there ONNX's quantisation scales outweigh the saved weight bytes.
    variants = variants_by_key(mobilenet_profile)
    for fmt, precisions in (("tflite", ["float16", "int8_dynamic", "int8_full"]), ("onnx", ["int8_dynamic"])):
        for precision in precisions:
            assert variants[(fmt, precision)].size_mb < variants[(fmt, "float32")].size_mb, (fmt, precision)
    assert variants[("tflite", "int8_dynamic")].size_mb < 0.35 * variants[("tflite", "float32")].size_mb


def test_keras_size_is_the_weights_without_optimizer_state(mobilenet_profile):
    weights_mb = mobilenet_profile.params_m * 4  # float32 bytes; Adam's slots would add twice as much again
    assert weights_mb < mobilenet_profile.keras_size_mb < 1.2 * weights_mb


def test_mobilenet_flops_match_the_profiler_run_on_its_own(mobilenet_profile):
    gflops, error = count_gflops(mobilenet_v3_small())
    assert error == "" and gflops == pytest.approx(mobilenet_profile.gflops)
    assert 1e-3 < gflops < 1e-2  # ~4.5 MFLOPs at 32 px (the 224 px network is ~0.12 GFLOPs)


def test_rows_and_summary_use_the_declared_columns(cnn_profile):
    rows = deployment_rows(cnn_profile, "cnn_tiny", 0.5)
    assert len(rows) == len(cnn_profile.variants)
    assert all(list(row) == DEPLOYMENT_COLUMNS and row["model"] == "cnn_tiny" and row["alpha"] == 0.5 for row in rows)
    assert list(deployment_table(rows).columns) == DEPLOYMENT_COLUMNS
    summary = summary_columns(cnn_profile)
    assert list(summary) == SUMMARY_COLUMNS
    assert summary["size_mb"] == cnn_profile.keras_size_mb and summary["infer_ms_b1"] == cnn_profile.infer_ms_b1


def test_dense_flops_are_two_per_multiply_add_plus_the_bias():
    model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(10)])
    gflops, error = count_gflops(model)
    assert error == "" and gflops * 1e9 == pytest.approx(2 * 20 * 10 + 10)


def test_conv_flops_are_two_per_multiply_add():
    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(8, 3, padding="same")])
    macs = 32 * 32 * 8 * 3 * 3 * 3
    gflops, _ = count_gflops(model)
    assert 2 * macs <= gflops * 1e9 <= 2 * macs + 32 * 32 * 8  # plus at most one add per output for the bias


def test_missing_packages_and_no_calibration_images_skip_their_variants(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` raise ImportError
    images, labels = colour_images(8, seed=2)
    result = profile_model(tiny_cnn(), images, labels, images[:0], tmp_path, formats=("tflite", "onnx"), **FAST)
    variants = variants_by_key(result)
    assert ("keras", "float32") not in variants and result.infer_ms_b1 > 0  # measured, not listed
    for precision in ("float32", "int8_dynamic"):
        assert variants[("onnx", precision)].status == "skipped"
        assert "onnxruntime not installed" in variants[("onnx", precision)].error
    assert variants[("tflite", "int8_full")].status == "skipped"
    assert "representative" in variants[("tflite", "int8_full")].error

    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    result = profile_model(tiny_cnn(), images, labels, images, tmp_path / "no_litert", formats=("tflite",), **FAST)
    assert {v.status for v in result.variants} == {"skipped"}
    assert all("ai-edge-litert not installed" in v.error for v in result.variants)


def test_a_failed_conversion_is_a_row_and_the_profile_goes_on(monkeypatch, tmp_path):
    pytest.importorskip("ai_edge_litert")
    real_convert = deployment._convert_tflite

    def convert(saved_model, precision, calibration):
        if precision == "float16":
            raise RuntimeError("converter exploded\nsecond line")
        return real_convert(saved_model, precision, calibration)

    monkeypatch.setattr(deployment, "_convert_tflite", convert)
    images, labels = colour_images(8, seed=2)
    result = profile_model(tiny_cnn(), images, labels, images, tmp_path, formats=("tflite",), **FAST)
    variants = variants_by_key(result)
    assert variants[("tflite", "float16")].status == "failed"
    assert variants[("tflite", "float16")].error == "conversion failed: RuntimeError: converter exploded second line"
    assert variants[("tflite", "float32")].status == "ok"


def test_a_float_export_that_drifts_from_keras_is_flagged_mismatch(monkeypatch, tmp_path):
    pytest.importorskip("ai_edge_litert")
    real_predict = deployment._litert_predict

    def drifting(interpreter_class, path, batch_size):
        predict = real_predict(interpreter_class, path, batch_size)
        return lambda batch: predict(batch) + 0.1

    monkeypatch.setattr(deployment, "_litert_predict", drifting)
    images, labels = colour_images(8, seed=2)
    result = profile_model(tiny_cnn(), images, labels, images[:0], tmp_path, formats=("tflite",), **FAST)
    float32 = variants_by_key(result)[("tflite", "float32")]
    assert float32.status == "mismatch" and "max |output - Keras|" in float32.error
    assert float32.infer_ms_b1 > 0 and float32.max_abs_diff == pytest.approx(0.1, abs=1e-3)  # figures kept
    assert variants_by_key(result)[("tflite", "int8_dynamic")].status == "ok"  # quantised: no tolerance
