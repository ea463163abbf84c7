"""A quiet first contact: TensorFlow's start-up chatter hidden unless `--verbose`.

Importing TensorFlow prints absl and CUDA lines straight to file descriptor 2 from C++
(`WARNING: All log messages before absl::InitializeLog()...`, `Could not find cuda drivers`, and on
a CPU machine with CUDA libraries `E0000 ... failed call to cuInit: UNKNOWN ERROR (303)`), which
reads like a failure. `quiet_startup` imports TensorFlow and lists its devices with descriptor 2
pointed at a temporary file, then replays any captured line that is not such noise. It also
silences numpy/matplotlib `RuntimeWarning`s and third-party INFO logs; `--verbose` keeps them all.
This module imports nothing heavy itself, so the CLI can parse flags first.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
import warnings

from benchmark.output import to_stderr

# Start-up lines that say nothing a user must act on (matched anywhere in the line).
NOISE = re.compile(
    r"absl::InitializeLog|cudart_stub|cuda_(?:driver|diagnostics|executor|blas|dnn|fft)|cuInit"
    r"|oneDNN custom operations|rebuild TensorFlow with the appropriate compiler flags"
    r"|This TensorFlow binary is optimized|computation_placer|TF-TRT Warning"
    r"|Unable to register cu(?:DNN|FFT|BLAS) factory|port\.cc:\d+\]|cpu_feature_guard"
)


def quiet_startup(*, verbose: bool = False) -> list[str]:
    """Imports TensorFlow (quietly unless `verbose`) and returns the visible GPUs' names."""
    if verbose:
        import tensorflow as tf

        return [d.name for d in tf.config.list_physical_devices("GPU")]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore", category=RuntimeWarning)
    for name in ("absl", "tensorflow", "onnxruntime", "tf2onnx", "matplotlib", "PIL"):
        logging.getLogger(name).setLevel(logging.ERROR)
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf

            gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        kept = [
            line
            for line in captured.read().decode(errors="replace").splitlines()
            if line.strip() and not NOISE.search(line)
        ]
    for line in kept:
        to_stderr(line)
    tf.get_logger().setLevel(logging.ERROR)
    return gpus
