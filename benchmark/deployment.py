"""What a trained model costs to deploy: size, FLOPs, latency, throughput, and the accuracy cost of quantisation.

A sorting line picks a model on cost as much as on accuracy, and a prior study lost 34 accuracy points
to INT8, so every exported variant is measured on the test split, not just timed. Each variant is
checked against the Keras model on a few images before it is timed, and a variant that cannot be
built (missing package, converter error) becomes a row with its reason instead of stopping the profile.

Conventions:
- Sizes are in MB = 10**6 bytes, of the file each runtime loads.
- Latency is the median wall time of `repeats` calls after `warmup` calls (the first calls allocate
  and pick kernels); throughput is 32 divided by the median time of one batch-32 call.
- Keras is timed through a traced `tf.function` (what a serving process runs); `model.predict`
  would add its per-call setup, which dominates at batch 1. LiteRT and ONNX Runtime always run on the
  CPU with all its threads, whatever device trained the model, so each row names its device.
- Exported models keep float32 inputs and outputs, int8_full included (quantise/dequantise at the
  edges), so every variant takes the same preprocessed images and gives comparable probabilities.
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib
import logging
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

FORMATS = ("keras", "tflite", "onnx")
TFLITE_PRECISIONS = ("float32", "float16", "int8_dynamic", "int8_full")
ONNX_PRECISIONS = ("float32", "int8_dynamic")
ONNX_OPSET = 17
THROUGHPUT_BATCH = 32
# Largest |exported - Keras| on the model outputs (probabilities for our heads) before a float variant
# is flagged "mismatch". float32 runtimes differ only in summation order (~1e-6 measured); float16
# weights round to ~3 significant digits. Quantised variants are expected to differ: no tolerance.
FLOAT_TOLERANCE = {"float32": 1e-3, "float16": 2e-2}
INSTALL_HINT = "pip install -r requirements.txt"


@dataclass
class VariantResult:
    """One deployable form of a model and what it costs.

    Args:
        format: "keras", "tflite" or "onnx".
        precision: "float32", "float16", "int8_dynamic" (int8 weights, float activations) or
            "int8_full" (int8 weights and activations, calibrated on training images).
        status: "ok"; "mismatch" (a float variant beyond `FLOAT_TOLERANCE`, figures kept);
            "failed" (conversion or run error); "skipped" (package missing or nothing to calibrate on).
        agreement_with_keras: fraction of test images whose argmax equals the Keras model's.
        max_abs_diff: largest |output - Keras output| over the test images.
        note: how a figure was measured when it differs from the default (e.g. no batch-32 resize).
    """
    format: str
    precision: str
    status: str = "ok"
    size_mb: float | None = None
    infer_ms_b1: float | None = None
    infer_img_s_b32: float | None = None
    test_accuracy: float | None = None
    agreement_with_keras: float | None = None
    max_abs_diff: float | None = None
    device: str = ""
    note: str = ""
    error: str = ""  # one line


@dataclass
class DeploymentProfile:
    """A model's deployment cost; the scalar fields are the Keras model's and feed the leaderboard.

    `gflops` is None, with `gflops_error` saying why, when TF's profiler cannot count the graph.
    """
    params_m: float
    keras_size_mb: float | None
    gflops: float | None
    infer_ms_b1: float | None
    infer_img_s_b32: float | None
    device: str
    variants: list[VariantResult] = field(default_factory=list)
    gflops_error: str = ""


DEPLOYMENT_COLUMNS = ["model", "alpha"] + [f.name for f in dataclasses.fields(VariantResult)]
SUMMARY_COLUMNS = ["infer_ms_b1", "infer_img_s_b32", "size_mb", "gflops"]

Predict = Callable[[np.ndarray], np.ndarray]


def profile_model(model: keras.Model, test_images: np.ndarray, test_labels: np.ndarray,
                  representative_images: np.ndarray, work_dir: Path, *,
                  formats: Sequence[str] = FORMATS, repeats: int = 10, warmup: int = 2,
                  check_images: int = 8) -> DeploymentProfile:
    """Measures `model` and its exports on this machine.

    Args:
        model: a trained single-input image classifier.
        test_images: preprocessed model inputs, float32 NHWC (the test split).
        test_labels: class indices, or one-hot rows.
        representative_images: preprocessed training images that calibrate int8_full (a few dozen
            suffice; an empty array skips int8_full).
        work_dir: where the exported files are written (and left, so their sizes can be checked).
        formats: any of `FORMATS`. The Keras model is measured regardless (it is the reference, and its
            figures are the leaderboard's); "keras" only decides whether it is listed as a variant.
        repeats: timed calls per figure. Defaults to 10.
        warmup: untimed calls first. Defaults to 2.
        check_images: test images compared with Keras before a variant is timed. Defaults to 8.
    """
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise ValueError(f"unknown deployment formats {unknown!r}; expected some of {FORMATS}")
    if len(model.inputs) != 1:
        raise ValueError(f"deployment profiling takes single-input image models; {model.name!r} has {len(model.inputs)} inputs")
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    images = np.asarray(test_images, dtype=np.float32)
    labels = np.asarray(test_labels)
    labels = labels.argmax(axis=1) if labels.ndim == 2 else labels.astype(int)
    calibration = np.asarray(representative_images, dtype=np.float32)
    measure = _Measurer(images, labels, repeats=repeats, warmup=warmup, check_images=check_images)

    keras_device = _keras_device()
    keras_variant = VariantResult("keras", "float32", device=keras_device)
    keras_size = _save_keras(model, work_dir / "model.keras", keras_variant)
    measure.run(keras_variant, _keras_predict(model), reference=True)

    gflops, gflops_error = count_gflops(model)
    variants = [keras_variant] if "keras" in formats else []
    if "tflite" in formats:
        variants += _tflite_variants(model, calibration, work_dir, measure)
    if "onnx" in formats:
        variants += _onnx_variants(model, work_dir, measure)
    return DeploymentProfile(params_m=model.count_params() / 1e6, keras_size_mb=keras_size, gflops=gflops,
                             infer_ms_b1=keras_variant.infer_ms_b1, infer_img_s_b32=keras_variant.infer_img_s_b32,
                             device=keras_device, variants=variants, gflops_error=gflops_error)


def count_gflops(model: keras.Model) -> tuple[float | None, str]:
    """GFLOPs of one image through `model`, from TF's graph profiler; (None, reason) if it fails.

    The profiler counts a multiply-add as 2 FLOPs (a Dense layer n_in -> n_out is 2*n_in*n_out plus
    n_out for the bias) and counts ops without a registered FLOP statistic as zero; convolutions and
    matrix products, which dominate CNNs, are all registered. Variables are frozen into constants so
    the count covers the inference graph only.
    """
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    try:
        spec = tf.TensorSpec((1, *model.inputs[0].shape[1:]), tf.float32)
        concrete = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
        frozen = convert_variables_to_constants_v2(concrete)
        options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
        options["output"] = "none"
        stats = tf.compat.v1.profiler.profile(graph=frozen.graph, run_meta=tf.compat.v1.RunMetadata(),
                                              cmd="op", options=options)
    except Exception as err:
        return None, f"TF profiler failed: {_one_line(err)}"
    if not stats.total_float_ops:
        return None, "TF profiler counted no float operations"
    return stats.total_float_ops / 1e9, ""


def summary_columns(profile: DeploymentProfile) -> dict:
    """The four leaderboard columns: the Keras model's batch-1 latency, batch-32 throughput, `.keras` size, GFLOPs."""
    return {"infer_ms_b1": profile.infer_ms_b1, "infer_img_s_b32": profile.infer_img_s_b32,
            "size_mb": profile.keras_size_mb, "gflops": profile.gflops}


def deployment_rows(profile: DeploymentProfile, model_name: str, alpha: float) -> list[dict]:
    """One row per variant, keyed by `DEPLOYMENT_COLUMNS` (the layout of `RUN_DIR/deployment.csv`)."""
    return [{"model": model_name, "alpha": alpha, **dataclasses.asdict(variant)} for variant in profile.variants]


def deployment_table(rows: list[dict]) -> pd.DataFrame:
    """The rows of all profiled models as one table in `DEPLOYMENT_COLUMNS` order, ready for `results.write_tables`."""
    return pd.DataFrame(rows, columns=DEPLOYMENT_COLUMNS)


class _Measurer:
    """Runs one variant over the test split: agreement check, timings, accuracy, agreement with Keras.

    The first variant run with `reference=True` (Keras) supplies the outputs the others are compared with.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, *, repeats: int, warmup: int, check_images: int):
        if len(images) == 0:
            raise ValueError("deployment profiling needs at least one test image")
        self.images, self.labels = images, labels
        self.repeats, self.warmup, self.check_images = max(1, repeats), max(0, warmup), max(1, check_images)
        # A fixed batch-32 input even when the test split is smaller, so throughput is always at 32.
        self.batch = images[np.arange(THROUGHPUT_BATCH) % len(images)]
        self.reference: np.ndarray | None = None

    def run(self, variant: VariantResult, predict: Predict, *, reference: bool = False,
            batch_predict: Predict | None = None) -> None:
        """Fills `variant` in place. `batch_predict` takes a batch of 32 (default: `predict`)."""
        batch_predict = batch_predict or predict
        if not reference and self.reference is None:
            variant.status, variant.error = "failed", "no Keras reference outputs (the Keras run failed)"
            return
        try:
            if not reference:
                check = self.check_images
                head = predict(self.images[:check])
                if not np.all(np.isfinite(head)):
                    variant.status, variant.error = "failed", f"non-finite outputs on the first {check} test images"
                    return
                self._flag(variant, float(np.max(np.abs(head - self.reference[:check]))), f"first {check} test images")
            variant.infer_ms_b1 = 1e3 * self._median_s(predict, self.images[:1])
            variant.infer_img_s_b32 = THROUGHPUT_BATCH / self._median_s(batch_predict, self.batch)
            outputs = np.concatenate([batch_predict(chunk)[:n] for chunk, n in self._chunks()])
        except Exception as err:
            variant.status, variant.error = "failed", _one_line(err)
            return
        if reference:
            self.reference = outputs
        predicted = outputs.argmax(axis=1)
        variant.test_accuracy = float(np.mean(predicted == self.labels))
        variant.agreement_with_keras = float(np.mean(predicted == self.reference.argmax(axis=1)))
        variant.max_abs_diff = float(np.max(np.abs(outputs - self.reference)))
        self._flag(variant, variant.max_abs_diff, "test images")

    def _flag(self, variant: VariantResult, diff: float, where: str) -> None:
        tolerance = FLOAT_TOLERANCE.get(variant.precision)
        if variant.format != "keras" and tolerance is not None and diff > tolerance and variant.status == "ok":
            variant.status = "mismatch"
            variant.error = f"max |output - Keras| {diff:.2e} > {tolerance:g} on the {where}"

    def _median_s(self, predict: Predict, batch: np.ndarray) -> float:
        for _ in range(self.warmup):
            predict(batch)
        times = []
        for _ in range(self.repeats):
            start = time.perf_counter()
            predict(batch)
            times.append(time.perf_counter() - start)
        return float(np.median(times))

    def _chunks(self):
        """Test batches padded to 32 (and the real count), so runtimes sized for 32 never resize."""
        for start in range(0, len(self.images), THROUGHPUT_BATCH):
            chunk = self.images[start:start + THROUGHPUT_BATCH]
            n = len(chunk)
            yield (chunk if n == THROUGHPUT_BATCH else np.concatenate([chunk, self.batch[: THROUGHPUT_BATCH - n]])), n


def _save_keras(model: keras.Model, path: Path, variant: VariantResult) -> float | None:
    """Saves what a deployment ships, without optimizer state (Adam's two slots per weight would triple
    the file): an uncompiled functional model over the same layers (`clone_model` would recompile).
    A model that cannot be rewrapped (subclassed, no symbolic inputs) is saved as it is, and says so."""
    try:
        bare = keras.Model(model.inputs, model.outputs, name=model.name)
    except Exception as err:
        bare = model
        variant.note = f"saved with its optimizer state (could not rewrap it: {_one_line(err)})"
    try:
        bare.save(path)
    except Exception as err:  # e.g. a custom layer without get_config: it still profiles, only the size is missing
        variant.error = f"model.save failed: {_one_line(err)}"
        return None
    variant.size_mb = _size_mb(path)
    return variant.size_mb


def _keras_predict(model: keras.Model) -> Predict:
    serve = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    return lambda batch: np.asarray(serve(tf.convert_to_tensor(batch)))


def _tflite_variants(model: keras.Model, calibration: np.ndarray, work_dir: Path,
                     measure: _Measurer) -> list[VariantResult]:
    """The four LiteRT exports, converted from one SavedModel with builtin ops only (no Flex delegate)."""
    variants = [VariantResult("tflite", precision, device=_cpu_device()) for precision in TFLITE_PRECISIONS]
    litert = _import_optional("ai_edge_litert.interpreter", "ai-edge-litert")
    if isinstance(litert, str):
        return [_skip(v, litert) for v in variants]
    saved_model = work_dir / "saved_model"
    try:
        # The SavedModel route is TF's supported Keras 3 path; converting a concrete function with its
        # variables left as resources produced NaN outputs here (the variables are never initialised).
        model.export(str(saved_model), format="tf_saved_model", verbose=False)
    except Exception as err:
        return [_fail(v, f"SavedModel export failed: {_one_line(err)}") for v in variants]
    for variant in variants:
        if variant.precision == "int8_full" and len(calibration) == 0:
            _skip(variant, "no representative images to calibrate int8 activations")
            continue
        path = work_dir / f"model_{variant.precision}.tflite"
        try:
            path.write_bytes(_convert_tflite(saved_model, variant.precision, calibration))
        except Exception as err:
            _fail(variant, f"conversion failed: {_one_line(err)}")
            continue
        variant.size_mb = _size_mb(path)
        try:
            predict_b1 = _litert_predict(litert.Interpreter, path, 1)
        except Exception as err:
            _fail(variant, f"LiteRT could not load it: {_one_line(err)}")
            continue
        try:
            predict_b32 = _litert_predict(litert.Interpreter, path, THROUGHPUT_BATCH)
        except Exception as err:
            # Some quantised graphs cannot be resized; one image at a time is then the honest figure.
            variant.note = f"batch {THROUGHPUT_BATCH} measured as single-image calls (resize failed: {_one_line(err)})"
            predict_b32 = _one_at_a_time(predict_b1)
        measure.run(variant, _one_at_a_time(predict_b1), batch_predict=predict_b32)
    return variants


def _convert_tflite(saved_model: Path, precision: str, calibration: np.ndarray) -> bytes:
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    if precision != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]  # alone: int8 weights, float activations
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
    return lambda batch: np.concatenate([predict_one(batch[i:i + 1]) for i in range(len(batch))])


def _onnx_variants(model: keras.Model, work_dir: Path, measure: _Measurer) -> list[VariantResult]:
    """float32 exported by Keras through tf2onnx (opset 17), and its ONNX Runtime dynamic int8 quantisation."""
    variants = [VariantResult("onnx", precision, device=_cpu_device()) for precision in ONNX_PRECISIONS]
    for module, package in (("tf2onnx", "tf2onnx"), ("onnx", "onnx"), ("onnxruntime", "onnxruntime")):
        missing = _import_optional(module, package)
        if isinstance(missing, str):
            return [_skip(v, missing) for v in variants]
    import onnxruntime
    from onnxruntime.quantization import QuantType, quantize_dynamic

    float_path, int8_path = work_dir / "model_float32.onnx", work_dir / "model_int8_dynamic.onnx"
    try:
        # Keras's exporter wraps tf2onnx with the numpy-2 patches tf2onnx 1.17 still needs. tf2onnx logs
        # a full traceback for each graph optimisation it skips (harmless), so only its errors are shown.
        with _quiet_logger("tf2onnx"):
            model.export(str(float_path), format="onnx", opset_version=ONNX_OPSET, verbose=False)
    except Exception as err:
        return [_fail(v, f"tf2onnx export failed: {_one_line(err)}") for v in variants]
    try:
        quantize_dynamic(str(float_path), str(int8_path), weight_type=QuantType.QInt8)
    except Exception as err:
        _fail(variants[1], f"quantize_dynamic failed: {_one_line(err)}")
    for variant, path in zip(variants, (float_path, int8_path)):
        if variant.status != "ok":
            continue
        variant.size_mb = _size_mb(path)
        try:
            session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as err:
            _fail(variant, f"ONNX Runtime could not load it: {_one_line(err)}")
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
        return f"{package} not installed ({INSTALL_HINT}): {_one_line(err)}"


def _skip(variant: VariantResult, reason: str) -> VariantResult:
    variant.status, variant.error = "skipped", reason
    return variant


def _fail(variant: VariantResult, reason: str) -> VariantResult:
    variant.status, variant.error = "failed", reason
    return variant


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return f"{type(err).__name__}: {text}"[:300]


def _size_mb(path: Path) -> float:
    return path.stat().st_size / 1e6


def _cpu_device() -> str:
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU {name} ({os.cpu_count()} threads)"


def _keras_device() -> str:
    """The device Keras runs on: the first GPU when TensorFlow sees one, else the CPU."""
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return _cpu_device()
    details = tf.config.experimental.get_device_details(gpus[0])
    return f"GPU {details.get('device_name', gpus[0].name)}"
