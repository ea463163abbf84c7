"""The restricted unpickler: what a PyTorch state dict's pickle may build, as stand-ins of ours.

Only the globals a state dict needs resolve (an ordered dict, the tensor rebuild function, the
typed storage classes); each load gets its own stand-ins, and the storage classes are frozen, so
one file cannot change how the next one reads. Every pickle is scanned (`pickle_scan`) before it
is loaded. Tensors become `TensorRef` descriptions; no storage is read here.
"""

from __future__ import annotations

import io
import pickle
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from models.checkpoints.format import MAX_DESCRIPTION_BYTES
from models.checkpoints.pickle_scan import describe, scan_pickle

# Storage classes a state dict may name, with their numpy dtypes.
STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}
try:  # bfloat16 has no numpy dtype of its own; ml_dtypes (a Keras dependency) supplies one
    import ml_dtypes

    STORAGE_DTYPES["BFloat16Storage"] = ml_dtypes.bfloat16
except ImportError:  # pragma: no cover (then a bfloat16 file names an unknown global)
    pass
# The pickles of a checkpoint together (names and tensor descriptions, no numbers): Lite2's take
# 62 kB; 1 MiB holds some 5,000 tensors and is walked in about 1.5 s.
MAX_PICKLE_BYTES = MAX_DESCRIPTION_BYTES
# More dimensions than any layer's weight has (numpy's own limit is 64).
MAX_DIMS = 16
# The storages a float layer can take; integer and bool tensors are never silently cast.
FLOAT_STORAGES = ("FloatStorage", "DoubleStorage", "HalfStorage", "BFloat16Storage")


@dataclass(frozen=True)
class Storage:
    key: str
    storage_type: str
    numel: int

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(STORAGE_DTYPES[self.storage_type])

    @property
    def nbytes(self) -> int:
        return self.numel * self.dtype.itemsize


@dataclass(frozen=True)
class TensorRef:
    """A tensor as the pickle describes it; its numbers are read once every storage is known."""

    storage: Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


class _StorageType:
    """Stands in for `torch.FloatStorage` and its kin: only its name is used, and it is frozen
    (a file that could rewrite it would change how every later file's storages read)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        object.__setattr__(self, "name", name)

    def __setattr__(self, name, value):
        raise pickle.UnpicklingError("it modifies a storage class")


def _rebuild_tensor_v2(
    storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None
):
    """Stands in for `torch._utils._rebuild_tensor_v2` (and `_rebuild_tensor`): records the view."""
    if not isinstance(storage, Storage):
        raise pickle.UnpicklingError("a tensor whose storage is not a storage")
    if not (
        _is_index(storage_offset)
        and _is_shape(size)
        and _is_shape(stride)
        and len(size) == len(stride) <= MAX_DIMS
    ):
        raise pickle.UnpicklingError("a tensor with a malformed offset, size or stride")
    return TensorRef(storage, storage_offset, tuple(size), tuple(stride))


def _is_index(value) -> bool:
    return type(value) is int and 0 <= value < 1 << 63  # PyTorch's sizes are int64


def _is_shape(value) -> bool:
    return isinstance(value, tuple) and all(_is_index(v) for v in value)


def _allowed() -> dict:
    """The globals a state dict may name, as new stand-ins for each load (never shared)."""
    return {
        ("collections", "OrderedDict"): OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor_v2,
        **{("torch", name): _StorageType(name) for name in STORAGE_DTYPES},
    }


ALLOWED_GLOBALS = frozenset(_allowed())


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals in `_allowed()`; storages become `_Storage` descriptions."""

    def __init__(self, file, storages: dict[str, Storage]) -> None:
        super().__init__(file)
        self.storages = storages
        self.allowed = _allowed()

    def find_class(self, module: str, name: str):
        allowed = self.allowed.get((module, name))
        if allowed is None:  # the scan refuses these first; kept as a second lock
            raise pickle.UnpicklingError(f"it names {module[:80]}.{name[:80]}")
        return allowed

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            raise pickle.UnpicklingError("a persistent reference that is not a tensor storage")
        storage_type, key, _location, numel = pid[1:5]
        if len(pid) == 6 and pid[5] is not None:
            raise pickle.UnpicklingError("a storage view (pre-1.0 serialisation) is not supported")
        if (
            not isinstance(storage_type, _StorageType)
            or not isinstance(key, str)
            or not _is_index(numel)
        ):
            raise pickle.UnpicklingError("a malformed storage reference")
        known = self.storages.get(key)
        storage = Storage(key, storage_type.name, numel)
        if known is not None and known != storage:
            raise pickle.UnpicklingError(f"storage {describe(key)} is described twice, differently")
        self.storages[key] = storage
        return storage


def unpickle(pickled: bytes, storages: dict[str, Storage]):
    """Scans, then loads, exactly one pickle."""
    stream = io.BytesIO(pickled)
    scan_pickle(stream, ALLOWED_GLOBALS, MAX_PICKLE_BYTES)
    if stream.tell() != len(pickled):
        raise pickle.UnpicklingError("bytes follow the pickle")
    return _RestrictedUnpickler(io.BytesIO(pickled), storages).load()


def next_pickle(stream: io.BytesIO, storages: dict[str, Storage]):
    """Scans and loads the pickle at the stream's position, leaving the stream after it; the
    pickles before it count towards `MAX_PICKLE_BYTES` (a legacy file starts with five)."""
    start = stream.tell()
    scan_pickle(stream, ALLOWED_GLOBALS, MAX_PICKLE_BYTES - start)
    pickled = stream.getbuffer()[start : stream.tell()].tobytes()
    return _RestrictedUnpickler(io.BytesIO(pickled), storages).load()
