"""Device-dependent choices: numeric precision, multi-GPU strategy and XLA.

Measured on a 2-core CPU: oneDNN kernels train 1.2-2x faster (TensorFlow turns them on by default
on x86 Linux; the CLI keeps that default unless the user set TF_ENABLE_ONEDNN_OPTS), and XLA
`jit_compile=True` is far slower there, so we never force it on CPU.
"""

from __future__ import annotations

import tensorflow as tf


def gpus() -> list:
    return tf.config.list_physical_devices("GPU")


def resolve_precision(requested: str) -> str:
    """`auto`: float32 on CPU; on GPU mixed_bfloat16 where supported (compute capability >= 8), else
    mixed_float16.
    """
    if requested != "auto":
        return requested
    devices = gpus()
    if not devices:
        return "float32"
    capability = tf.config.experimental.get_device_details(devices[0]).get(
        "compute_capability", (0, 0)
    )
    if capability >= (8, 0):
        return "mixed_bfloat16"
    return "mixed_float16" if capability >= (7, 0) else "float32"


def resolve_strategy(requested: str) -> tf.distribute.Strategy:
    """MirroredStrategy over all visible GPUs when there are several (or when asked), else the
    default.
    """
    if requested == "mirrored" or (requested == "auto" and len(gpus()) > 1):
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def jit_compile_setting() -> bool | str:
    """Keras's own choice ("auto") on GPU; never XLA on CPU, where it is far slower."""
    return "auto" if gpus() else False
