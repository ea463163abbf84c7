"""Reads a PyTorch state dict into numpy arrays without PyTorch, and without trusting the file.

A `.pth` file is a pickle, and a pickle is a program: `pickle.load` (and `torch.load` before
`weights_only`) will call any function the file names, `os.system` included. This reader admits
only the globals a state dict needs (an ordered dict, the tensor rebuild function, typed storage
classes), each mapped to a stand-in of ours, and refuses anything else in one line naming the file.

Both serialisations are read (`containers`: legacy before PyTorch 1.6, zip after), through the
restricted unpickler (`unpickler`).

A tensor is (storage, offset, size, stride). Many checkpoints exported from TensorFlow keep
TensorFlow's memory layout, so strides are not contiguous: ignoring them loads numbers that still
run and are garbage. Every view is checked to lie inside its storage before it is read.

The file is untrusted, so its cost is bounded before anything is decompressed or copied: every
pickle is scanned opcode by opcode first (`pickle_scan`), each load gets fresh stand-ins that
cannot be modified, the file, each zip entry's declared size, the storages and the views are held
to `max_bytes` (the port passes what its model needs), and the caller's `check` sees every
tensor's dtype and shape before a byte of a storage is read.
"""

from __future__ import annotations

import io
import math
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np

from models.checkpoints.containers import read_legacy, read_zip
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
from models.checkpoints.unpickler import FLOAT_STORAGES, TensorRef

# Wrappers that training scripts put around the state dict itself.
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")


def _check_views(state: dict[str, TensorRef], max_bytes: int) -> None:
    """Every view lies inside its storage, and storages and copies together fit `max_bytes`:
    a 400-byte file can describe a billion-element view of one number (stride 0)."""
    storages = {ref.storage.key: ref.storage for ref in state.values()}
    declared = sum(storage.nbytes for storage in storages.values())
    if declared > max_bytes:
        raise pickle.UnpicklingError(
            f"its storages declare {declared} bytes, more than the {max_bytes} allowed for it"
        )
    copies = 0
    for name, ref in state.items():
        count = math.prod(ref.size)
        copies += count * ref.storage.dtype.itemsize
        if copies > max_bytes:
            raise pickle.UnpicklingError(
                f"tensor {name} (shape {ref.size[:8]}, stride {ref.stride[:8]}) brings its "
                f"views to {copies} bytes, more than the {max_bytes} allowed for it"
            )
        last = ref.offset + sum((s - 1) * st for s, st in zip(ref.size, ref.stride))
        if count and last >= ref.storage.numel:
            raise pickle.UnpicklingError(
                f"tensor {name} overruns its storage ({last + 1} > {ref.storage.numel} elements)"
            )


def _materialise(name: str, ref: TensorRef, raw: dict[str, bytes]) -> np.ndarray:
    """Copies one strided view out of its storage (`_check_views` has bounded it)."""
    dtype = ref.storage.dtype
    if 0 in ref.size:
        return np.zeros(ref.size, dtype)
    storage = np.frombuffer(raw[ref.storage.key], dtype=dtype, count=ref.storage.numel)
    view = np.lib.stride_tricks.as_strided(
        storage[ref.offset :],
        shape=ref.size,
        # A length-1 axis never steps, so its stride (which may be any size) is irrelevant.
        strides=[st * dtype.itemsize if s > 1 else 0 for s, st in zip(ref.size, ref.stride)],
        writeable=False,
    )
    return np.array(view, copy=True)


def _unwrap(obj):
    """The flat name -> tensor mapping, looking inside one common wrapper key if there is one."""
    if isinstance(obj, dict) and not any(isinstance(v, TensorRef) for v in obj.values()):
        for key in WRAPPER_KEYS:
            if isinstance(obj.get(key), dict):
                return obj[key]
    return obj


def _tensor_refs(obj) -> dict[str, TensorRef]:
    state = _unwrap(obj)
    if not isinstance(state, dict) or not state:
        raise pickle.UnpicklingError("it holds no state dict")
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, TensorRef):
            raise pickle.UnpicklingError(f"entry {describe(key)} is not a named tensor")
    return state


def _read_bytes(path: Path, max_bytes: int) -> bytes:
    check_file_size(path, max_bytes)
    try:
        return path.read_bytes()
    except OSError as err:
        raise CheckpointError(f"checkpoint {path} cannot be read ({err.strerror or err})") from err


def read_state_dict(
    path: str | Path,
    max_bytes: int = DEFAULT_MAX_BYTES,
    check: Check | None = None,
) -> dict[str, np.ndarray]:
    """Name -> numpy array of a PyTorch state dict file; `CheckpointError` (one line) otherwise.

    `max_bytes` bounds the storages and the copied views; `check` (which raises
    `CheckpointError` to refuse) sees every tensor's dtype and shape before any storage is read.
    """
    path = Path(path)
    data = _read_bytes(path, max_bytes)
    try:
        is_zip = zipfile.is_zipfile(io.BytesIO(data))
        obj, _storages, fetch = read_zip(data) if is_zip else read_legacy(data)
        state = _tensor_refs(obj)
        _check_views(state, max_bytes)
        if check is not None:
            check(
                {
                    name: TensorSpec(
                        ref.storage.dtype, ref.size, ref.storage.storage_type in FLOAT_STORAGES
                    )
                    for name, ref in state.items()
                }
            )
        raw = fetch()
        return {name: _materialise(name, ref, raw) for name, ref in state.items()}
    except CheckpointError:
        raise  # the caller's check, already one line naming the file
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        KeyError,
        IndexError,
        AttributeError,
        OverflowError,
        RecursionError,
        NotImplementedError,  # a zip compression method Python cannot read
        OSError,  # a corrupt bz2 or lzma stream
        struct.error,
        zipfile.BadZipFile,
        MemoryError,
    ) as err:
        raise refusal(path, err) from None


def _starts_as_pytorch(head: bytes) -> bool:
    """A zip archive (PyTorch 1.6 and later) or a pickle (the legacy format's magic number)."""
    return head.startswith((b"PK\x03\x04", b"\x80"))


TORCH_PICKLE = CheckpointReader(
    format="PyTorch pickle",
    suffixes=(".pth", ".pt"),
    sniff=_starts_as_pytorch,
    read=read_state_dict,
)
