"""Writes tiny PyTorch-format checkpoints without PyTorch, opcode by opcode, for the reader's tests.

Only what `torch.save(state_dict)` writes is produced: an ordered dict of tensors, each a
`_rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())` call whose storage is a
persistent reference. `tensors` maps a name to (storage key, offset, size, stride); `storages` maps
a storage key to its contents: a list (float32) or a numpy array of a dtype in `STORAGE_CLASSES`.
`raw_zip` writes an archive byte by byte, so an entry can declare any size, method or name.
"""

import io
import pickle
import struct
import zipfile

import numpy as np

MAGIC, PROTOCOL = 0x1950A86A20F9469CFC6C, 1001
STORAGE_CLASSES = {
    "float32": "FloatStorage",
    "float16": "HalfStorage",
    "float64": "DoubleStorage",
    "bfloat16": "BFloat16Storage",
    "int64": "LongStorage",
    "bool": "BoolStorage",
}
# 384 MiB of zero bytes, bzip2-compressed (306 bytes; 8 s to compress, so kept), and its CRC-32.
BOMB_SIZE, BOMB_CRC = 384 << 20, 0x51E96494
BOMB_BZ2 = bytes.fromhex(
    "425a68393141592653590e09e2df015f8e4000c0000008200030804d4642a025a90a80973141592653590e09"
    "e2df015f8e4000c0000008200030804d4642a025a90a80973141592653590e09e2df015f8e4000c000000820"
    "0030804d4642a025a90a80973141592653590e09e2df015f8e4000c0000008200030804d4642a025a90a8097"
    "3141592653590e09e2df015f8e4000c0000008200030804d4642a025a90a80973141592653590e09e2df015f"
    "8e4000c0000008200030804d4642a025a90a80973141592653590e09e2df015f8e4000c0000008200030804d"
    "4642a025a90a80973141592653590e09e2df015f8e4000c0000008200030804d4642a025a90a809731415926"
    "535971a4467f010f986000c00004000008200030cc0529a60a2aa0d885155078bb9229c2848458b378f0"
)


def _array(values) -> np.ndarray:
    return values if isinstance(values, np.ndarray) else np.asarray(values, dtype="<f4")


def _str(text: str) -> bytes:
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def _int(value: int) -> bytes:
    if -(1 << 31) <= value < 1 << 31:
        return b"J" + struct.pack("<i", value)
    data = value.to_bytes(value.bit_length() // 8 + 1, "little", signed=True)
    return b"\x8a" + bytes([len(data)]) + data  # LONG1


def _global(module: str, name: str) -> bytes:
    return b"c" + f"{module}\n{name}\n".encode()


def _tuple(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"t"


def state_pickle(
    tensors: dict, storages: dict, legacy: bool = True, numels: dict | None = None
) -> bytes:
    """The state dict's pickle; `numels` overrides the element count a storage reference says."""
    body = b"\x80\x02" + _global("collections", "OrderedDict") + b")R("
    for name, (key, offset, size, stride) in tensors.items():
        array = _array(storages[key])
        numel = (numels or {}).get(key, array.size)
        reference = [
            _str("storage"),
            _global("torch", STORAGE_CLASSES[array.dtype.name]),
            _str(key),
            _str("cpu"),
            _int(numel),
        ] + ([b"N"] if legacy else [])
        body += _str(name) + _global("torch._utils", "_rebuild_tensor_v2")
        body += _tuple(
            _tuple(*reference) + b"Q",
            _int(offset),
            _tuple(*map(_int, size)),
            _tuple(*map(_int, stride)),
            b"\x89",
            _global("collections", "OrderedDict") + b")R",
        )
        body += b"R"
    return body + b"u."


def legacy_checkpoint(tensors: dict, storages: dict, main: bytes | None = None) -> bytes:
    out = pickle.dumps(MAGIC, 2) + pickle.dumps(PROTOCOL, 2)
    out += pickle.dumps(
        {
            "protocol_version": PROTOCOL,
            "little_endian": True,
            "type_sizes": {"short": 2, "int": 4, "long": 4},
        },
        2,
    )
    out += main if main is not None else state_pickle(tensors, storages)
    out += pickle.dumps(list(storages), 2)
    for values in storages.values():
        array = _array(values)
        out += struct.pack("<q", array.size) + array.tobytes()
    return out


def zip_checkpoint(tensors: dict, storages: dict, main: bytes | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(
            "archive/data.pkl", main if main is not None else state_pickle(tensors, storages, False)
        )
        for key, values in storages.items():
            archive.writestr(f"archive/data/{key}", _array(values).tobytes())
    return buffer.getvalue()


def system_call_pickle(command: str) -> bytes:
    """A pickle that calls os.system(command) when loaded with plain `pickle`."""
    return b"\x80\x02" + _global("os", "system") + _tuple(_str(command)) + b"R."


def raw_zip(entries: list[tuple[str, bytes, int, int, int]]) -> bytes:
    """A zip archive of (name, stored bytes, method, CRC-32, declared size) entries, written field
    by field: the declared size and method are whatever the caller says, names may repeat."""
    out, central = b"", b""
    for name, payload, method, crc, size in entries:
        encoded, offset = name.encode(), len(out)
        fields = (method, 0, 0x21, crc, len(payload), size, len(encoded), 0)
        out += struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 46, 0, *fields) + encoded + payload
        central += struct.pack(
            "<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 46, 46, 0, *fields, 0, 0, 0, 0, offset
        )
        central += encoded
    count = len(entries)
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, count, count, len(central), len(out), 0)
    return out + central + end
