"""Measuring one deployable variant of a model: the result rows and the timing and agreement rules.

Conventions are in `benchmark.deployment.profile`.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

THROUGHPUT_BATCH = 32

# Largest |exported - Keras| on the model outputs (probabilities for our heads) before a float
# variant is flagged "mismatch". float32 runtimes differ only in summation order (~1e-6 measured);
# float16 weights round to ~3 significant digits. Quantised variants are expected to differ: no
# tolerance.
FLOAT_TOLERANCE = {"float32": 1e-3, "float16": 2e-2}


@dataclass
class VariantResult:
    """One deployable form of a model and what it costs.

    Args:
        format: "keras", "tflite" or "onnx".
        precision: "float32", "float16", "int8_dynamic" (int8 weights, float activations) or
            "int8_full" (int8 weights and activations, calibrated on training images).
        status: "ok"; "mismatch" (a float variant beyond `FLOAT_TOLERANCE`, figures kept);
            "failed" (conversion or run error); "skipped" (package missing or nothing to calibrate
            on).
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

Predict = Callable[[np.ndarray], np.ndarray]


class Measurer:
    """Runs one variant over the test split: agreement check, timings, accuracy, agreement with
    Keras.

    The first variant run with `reference=True` (Keras) supplies the outputs the others are compared
    with.
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        *,
        repeats: int,
        warmup: int,
        check_images: int,
    ):
        if len(images) == 0:
            raise ValueError("deployment profiling needs at least one test image")
        self.images, self.labels = images, labels
        self.repeats, self.warmup, self.check_images = (
            max(1, repeats),
            max(0, warmup),
            max(1, check_images),
        )
        # A fixed batch-32 input even when the test split is smaller, so throughput is always at 32.
        self.batch = images[np.arange(THROUGHPUT_BATCH) % len(images)]
        self.reference: np.ndarray | None = None

    def run(
        self,
        variant: VariantResult,
        predict: Predict,
        *,
        reference: bool = False,
        batch_predict: Predict | None = None,
    ) -> None:
        """Fills `variant` in place. `batch_predict` takes a batch of 32 (default: `predict`)."""
        batch_predict = batch_predict or predict
        if not reference and self.reference is None:
            variant.status, variant.error = (
                "failed",
                "no Keras reference outputs (the Keras run failed)",
            )
            return
        try:
            if not reference:
                check = self.check_images
                head = predict(self.images[:check])
                if not np.all(np.isfinite(head)):
                    variant.status, variant.error = (
                        "failed",
                        f"non-finite outputs on the first {check} test images",
                    )
                    return
                self._flag(
                    variant,
                    float(np.max(np.abs(head - self.reference[:check]))),
                    f"first {check} test images",
                )
            variant.infer_ms_b1 = 1e3 * self._median_s(predict, self.images[:1])
            variant.infer_img_s_b32 = THROUGHPUT_BATCH / self._median_s(batch_predict, self.batch)
            outputs = np.concatenate([batch_predict(chunk)[:n] for chunk, n in self._chunks()])
        except Exception as err:
            variant.status, variant.error = "failed", one_line(err)
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
        if (
            variant.format != "keras"
            and tolerance is not None
            and diff > tolerance
            and variant.status == "ok"
        ):
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
            chunk = self.images[start : start + THROUGHPUT_BATCH]
            n = len(chunk)
            yield (
                (
                    chunk
                    if n == THROUGHPUT_BATCH
                    else np.concatenate([chunk, self.batch[: THROUGHPUT_BATCH - n]])
                ),
                n,
            )


def mark_skipped(variant: VariantResult, reason: str) -> VariantResult:
    variant.status, variant.error = "skipped", reason
    return variant


def mark_failed(variant: VariantResult, reason: str) -> VariantResult:
    variant.status, variant.error = "failed", reason
    return variant


def one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return f"{type(err).__name__}: {text}"[:300]


def size_mb(path: Path) -> float:
    return path.stat().st_size / 1e6


def cpu_device() -> str:
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU {name} ({os.cpu_count()} threads)"


def keras_device() -> str:
    """The device Keras runs on: the first GPU when TensorFlow sees one, else the CPU."""
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return cpu_device()
    details = tf.config.experimental.get_device_details(gpus[0])
    return f"GPU {details.get('device_name', gpus[0].name)}"
