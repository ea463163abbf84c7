"""LiteRT (TFLite) and ONNX Runtime exports of a Keras model, each measured as one variant.

A variant that cannot be built (missing package, converter error) becomes a row with its reason.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from benchmark.deployment.measure import (
    THROUGHPUT_BATCH,
    Measurer,
    Predict,
    VariantResult,
    cpu_device,
    mark_failed,
    mark_skipped,
    one_line,
    size_mb,
)

TFLITE_PRECISIONS = ("float32", "float16", "int8_dynamic", "int8_full")

ONNX_PRECISIONS = ("float32", "int8_dynamic")

ONNX_OPSET = 17

INSTALL_HINT = "pip install -r requirements.txt"


def tflite_variants(
    model: keras.Model, calibration: np.ndarray, work_dir: Path, measure: Measurer
) -> list[VariantResult]:
    """The four LiteRT exports, converted from one SavedModel with builtin ops only (no Flex
    delegate)."""
    variants = [
        VariantResult("tflite", precision, device=cpu_device()) for precision in TFLITE_PRECISIONS
    ]
    litert = _import_optional("ai_edge_litert.interpreter", "ai-edge-litert")
    if isinstance(litert, str):
        return [mark_skipped(v, litert) for v in variants]
    saved_model = work_dir / "saved_model"
    try:
        # The SavedModel route is TF's supported Keras 3 path; converting a concrete function with
        # its variables left as resources produced NaN outputs here (the variables are never
        # initialised).
        model.export(str(saved_model), format="tf_saved_model", verbose=False)
    except Exception as err:
        return [mark_failed(v, f"SavedModel export failed: {one_line(err)}") for v in variants]
    for variant in variants:
        if variant.precision == "int8_full" and len(calibration) == 0:
            mark_skipped(variant, "no representative images to calibrate int8 activations")
            continue
        path = work_dir / f"model_{variant.precision}.tflite"
        try:
            path.write_bytes(_convert_tflite(saved_model, variant.precision, calibration))
        except Exception as err:
            mark_failed(variant, f"conversion failed: {one_line(err)}")
            continue
        variant.size_mb = size_mb(path)
        try:
            predict_b1 = _litert_predict(litert.Interpreter, path, 1)
        except Exception as err:
            mark_failed(variant, f"LiteRT could not load it: {one_line(err)}")
            continue
        try:
            predict_b32 = _litert_predict(litert.Interpreter, path, THROUGHPUT_BATCH)
        except Exception as err:
            # Some quantised graphs cannot be resized; one image at a time is then the honest
            # figure.
            variant.note = (
                f"batch {THROUGHPUT_BATCH} measured as single-image calls "
                f"(resize failed: {one_line(err)})"
            )
            predict_b32 = _one_at_a_time(predict_b1)
        measure.run(variant, _one_at_a_time(predict_b1), batch_predict=predict_b32)
    return variants


def _convert_tflite(saved_model: Path, precision: str, calibration: np.ndarray) -> bytes:
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    if precision != "float32":
        converter.optimizations = [
            tf.lite.Optimize.DEFAULT
        ]  # alone: int8 weights, float activations
    if precision == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if precision == "int8_full":
        converter.representative_dataset = lambda: ([image[None]] for image in calibration)
        # Fail the conversion rather than silently leave float ops in a "full-integer" model.
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter.convert()


def _litert_predict(interpreter_class: type, path: Path, batch_size: int) -> Predict:
    interpreter = interpreter_class(model_path=str(path), num_threads=os.cpu_count())
    source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.resize_tensor_input(source["index"], [batch_size, *source["shape"][1:]])
    interpreter.allocate_tensors()

    def predict(batch: np.ndarray) -> np.ndarray:
        interpreter.set_tensor(source["index"], batch)
        interpreter.invoke()
        return interpreter.get_tensor(target["index"]).copy()

    return predict


def _one_at_a_time(predict_one: Predict) -> Predict:
    return lambda batch: np.concatenate([predict_one(batch[i : i + 1]) for i in range(len(batch))])


def onnx_variants(model: keras.Model, work_dir: Path, measure: Measurer) -> list[VariantResult]:
    """float32 exported by Keras through tf2onnx (opset 17), and its ONNX Runtime dynamic int8
    quantisation."""
    variants = [
        VariantResult("onnx", precision, device=cpu_device()) for precision in ONNX_PRECISIONS
    ]
    for module, package in (
        ("tf2onnx", "tf2onnx"),
        ("onnx", "onnx"),
        ("onnxruntime", "onnxruntime"),
    ):
        missing = _import_optional(module, package)
        if isinstance(missing, str):
            return [mark_skipped(v, missing) for v in variants]
    import onnxruntime
    from onnxruntime.quantization import QuantType, quantize_dynamic

    float_path, int8_path = work_dir / "model_float32.onnx", work_dir / "model_int8_dynamic.onnx"
    try:
        # Keras's exporter wraps tf2onnx with the numpy-2 patches tf2onnx 1.17 still needs. tf2onnx
        # logs a full traceback for each graph optimisation it skips (harmless), so only its errors
        # are shown.
        with _quiet_logger("tf2onnx"):
            model.export(str(float_path), format="onnx", opset_version=ONNX_OPSET, verbose=False)
    except Exception as err:
        return [mark_failed(v, f"tf2onnx export failed: {one_line(err)}") for v in variants]
    try:
        # onnxruntime logs "Please consider to run pre-processing before quantization" on the root
        # logger for every model; the int8 row's measured accuracy already says what quantisation
        # cost.
        with _quiet_logger(""):
            quantize_dynamic(str(float_path), str(int8_path), weight_type=QuantType.QInt8)
    except Exception as err:
        mark_failed(variants[1], f"quantize_dynamic failed: {one_line(err)}")
    for variant, path in zip(variants, (float_path, int8_path)):
        if variant.status != "ok":
            continue
        variant.size_mb = size_mb(path)
        try:
            session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as err:
            mark_failed(variant, f"ONNX Runtime could not load it: {one_line(err)}")
            continue
        name = session.get_inputs()[0].name
        measure.run(variant, lambda batch, s=session, n=name: s.run(None, {n: batch})[0])
    return variants


@contextlib.contextmanager
def _quiet_logger(name: str):
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _import_optional(module: str, package: str):
    """The module, or a one-line reason naming the package to install."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        return f"{package} not installed ({INSTALL_HINT}): {one_line(err)}"
