"""Reads a `.safetensors` checkpoint into numpy arrays: the second format behind `format.py`.

A safetensors file is an 8-byte header length, a JSON header (each tensor's dtype, shape and byte
range) and the raw little-endian numbers; nothing in it is code, and the `safetensors` library
(with `framework="np"`) checks that the byte ranges are in the file, in order and sized to their
shapes before it hands out a tensor. What the port needs on top is the same as for a PyTorch file:
its cost bounded before any numbers are read (the file's size, the tensors' declared bytes),
every tensor's description shown to the caller's `check` first, integer and unknown dtypes kept
out of float layers, and every refusal one line naming the file.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from models.checkpoints.format import (
    DEFAULT_MAX_BYTES,
    Check,
    CheckpointError,
    CheckpointReader,
    TensorSpec,
    check_file_size,
    refusal,
)
from models.checkpoints.pickle_scan import describe

# The safetensors dtype names this reader turns into numpy arrays; float8 and the unsigned wide
# integers are refused.
FLOAT_DTYPES = {"F16": np.float16, "F32": np.float32, "F64": np.float64}
try:  # bfloat16 has no numpy dtype of its own; ml_dtypes (a Keras dependency) supplies one
    import ml_dtypes

    FLOAT_DTYPES["BF16"] = ml_dtypes.bfloat16
except ImportError:  # pragma: no cover (then a bfloat16 file is refused as an unknown dtype)
    pass
OTHER_DTYPES = {
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U8": np.uint8,
    "BOOL": np.bool_,
}


def _spec(name: str, dtype: str, shape: list[int]) -> TensorSpec:
    known = FLOAT_DTYPES.get(dtype) or OTHER_DTYPES.get(dtype)
    if known is None:
        raise ValueError(f"tensor {describe(name)} has dtype {describe(dtype)}, which is not read")
    return TensorSpec(np.dtype(known), tuple(int(size) for size in shape), dtype in FLOAT_DTYPES)


def read_safetensors(
    path: str | Path, max_bytes: int = DEFAULT_MAX_BYTES, check: Check | None = None
) -> dict[str, np.ndarray]:
    """Name -> numpy array of a safetensors file; `CheckpointError` (one line) otherwise.

    `max_bytes` bounds the tensors' declared bytes; `check` (which raises `CheckpointError` to
    refuse) sees every tensor's dtype and shape before any of its numbers are read.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    check_file_size(path, max_bytes)
    try:
        with safe_open(str(path), framework="np") as handle:
            specs = {}
            for name in handle.keys():
                part = handle.get_slice(name)
                specs[name] = _spec(name, part.get_dtype(), part.get_shape())
            if not specs:
                raise ValueError("it holds no tensors")
            declared = sum(spec.numel * spec.dtype.itemsize for spec in specs.values())
            if declared > max_bytes:
                raise ValueError(
                    f"its tensors declare {declared} bytes, more than the {max_bytes} allowed "
                    "for it"
                )
            if check is not None:
                check(specs)
            return {name: np.array(handle.get_tensor(name), copy=True) for name in specs}
    except CheckpointError:
        raise  # the caller's check, already one line naming the file
    except (
        SafetensorError,
        OSError,
        ValueError,
        TypeError,
        KeyError,
        OverflowError,
        MemoryError,
    ) as err:
        raise refusal(path, err) from None


def _starts_as_safetensors(head: bytes) -> bool:
    """An 8-byte little-endian header length, then the JSON header's opening brace."""
    if len(head) < 9:
        return False
    (length,) = struct.unpack("<Q", head[:8])
    return 2 <= length < (1 << 27) and head[8:9] == b"{"


SAFETENSORS = CheckpointReader(
    format="safetensors",
    suffixes=(".safetensors",),
    sniff=_starts_as_safetensors,
    read=read_safetensors,
)
