"""What a trained model costs to deploy: size, FLOPs, latency, throughput, and the accuracy cost of
quantisation.

A sorting line picks a model on cost as much as on accuracy, and a prior study lost 34 accuracy
points to INT8, so every exported variant is measured on the test split, not just timed. Each
variant is checked against the Keras model on a few images before it is timed, and a variant that
cannot be built (missing package, converter error) becomes a row with its reason instead of stopping
the profile.

Conventions:
- Sizes are in MB = 10**6 bytes, of the file each runtime loads.
- Latency is the median wall time of `repeats` calls after `warmup` calls (the first calls allocate
  and pick kernels); throughput is 32 divided by the median time of one batch-32 call.
- Keras is timed through a traced `tf.function` (what a serving process runs); `model.predict`
  would add its per-call setup, which dominates at batch 1. LiteRT and ONNX Runtime always run on
  the CPU with all its threads, whatever device trained the model, so each row names its device.
- Exported models keep float32 inputs and outputs, int8_full included (quantise/dequantise at the
  edges), so every variant takes the same preprocessed images and gives comparable probabilities.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from benchmark.deployment.exports import onnx_variants, tflite_variants
from benchmark.deployment.measure import (  # noqa: F401 (re-exported)
    DEPLOYMENT_COLUMNS,
    FLOAT_TOLERANCE,
    DeploymentProfile,
    Measurer,
    Predict,
    VariantResult,
    keras_device,
    one_line,
    size_mb,
)

FORMATS = ("keras", "tflite", "onnx")


def profile_model(
    model: keras.Model,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    representative_images: np.ndarray,
    work_dir: Path,
    *,
    formats: Sequence[str] = FORMATS,
    repeats: int = 10,
    warmup: int = 2,
    check_images: int = 8,
) -> DeploymentProfile:
    """Measures `model` and its exports on this machine.

    Args:
        model: a trained single-input image classifier.
        test_images: preprocessed model inputs, float32 NHWC (the test split).
        test_labels: class indices, or one-hot rows.
        representative_images: preprocessed training images that calibrate int8_full (a few dozen
            suffice; an empty array skips int8_full).
        work_dir: where the exported files are written (and left, so their sizes can be checked).
        formats: any of `FORMATS`. The Keras model is measured regardless (it is the reference, and
            its figures are the leaderboard's); "keras" only decides whether it is listed as a
            variant.
        repeats: timed calls per figure. Defaults to 10.
        warmup: untimed calls first. Defaults to 2.
        check_images: test images compared with Keras before a variant is timed. Defaults to 8.
    """
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise ValueError(f"unknown deployment formats {unknown!r}; expected some of {FORMATS}")
    if len(model.inputs) != 1:
        raise ValueError(
            f"deployment profiling takes single-input image models; {model.name!r} has "
            f"{len(model.inputs)} inputs"
        )
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    images = np.asarray(test_images, dtype=np.float32)
    labels = np.asarray(test_labels)
    labels = labels.argmax(axis=1) if labels.ndim == 2 else labels.astype(int)
    calibration = np.asarray(representative_images, dtype=np.float32)
    measure = Measurer(images, labels, repeats=repeats, warmup=warmup, check_images=check_images)

    keras_on = keras_device()
    keras_variant = VariantResult("keras", "float32", device=keras_on)
    keras_size = _save_keras(model, work_dir / "model.keras", keras_variant)
    measure.run(keras_variant, _keras_predict(model), reference=True)

    gflops, gflops_error = count_gflops(model)
    variants = [keras_variant] if "keras" in formats else []
    if "tflite" in formats:
        variants += tflite_variants(model, calibration, work_dir, measure)
    if "onnx" in formats:
        variants += onnx_variants(model, work_dir, measure)
    return DeploymentProfile(
        params_m=model.count_params() / 1e6,
        keras_size_mb=keras_size,
        gflops=gflops,
        infer_ms_b1=keras_variant.infer_ms_b1,
        infer_img_s_b32=keras_variant.infer_img_s_b32,
        device=keras_on,
        variants=variants,
        gflops_error=gflops_error,
    )


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
        stats = tf.compat.v1.profiler.profile(
            graph=frozen.graph, run_meta=tf.compat.v1.RunMetadata(), cmd="op", options=options
        )
    except Exception as err:
        return None, f"TF profiler failed: {one_line(err)}"
    if not stats.total_float_ops:
        return None, "TF profiler counted no float operations"
    return stats.total_float_ops / 1e9, ""


def _save_keras(model: keras.Model, path: Path, variant: VariantResult) -> float | None:
    """Saves what a deployment ships, without optimizer state (Adam's two slots per weight would
    triple the file): an uncompiled functional model over the same layers (`clone_model` would
    recompile). A model that cannot be rewrapped (subclassed, no symbolic inputs) is saved as it is,
    and says so."""
    try:
        bare = keras.Model(model.inputs, model.outputs, name=model.name)
    except Exception as err:
        bare = model
        variant.note = f"saved with its optimizer state (could not rewrap it: {one_line(err)})"
    try:
        bare.save(path)
    except (
        Exception
    ) as err:  # e.g. a custom layer without get_config: it still profiles, only the size is missing
        variant.error = f"model.save failed: {one_line(err)}"
        return None
    variant.size_mb = size_mb(path)
    return variant.size_mb


def _keras_predict(model: keras.Model) -> Predict:
    serve = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    return lambda batch: np.asarray(serve(tf.convert_to_tensor(batch)))
