"""Writes tiny PyTorch-format checkpoints without PyTorch, opcode by opcode, for the reader's tests.

Only what `torch.save(state_dict)` writes is produced: an ordered dict of tensors, each a
`_rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())` call whose storage is a
persistent reference. `tensors` maps a name to (storage key, offset, size, stride); `storages` maps
a storage key to its float32 contents.
"""

import io
import pickle
import struct
import zipfile

import numpy as np

MAGIC, PROTOCOL = 0x1950A86A20F9469CFC6C, 1001


def _str(text: str) -> bytes:
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def _int(value: int) -> bytes:
    return b"J" + struct.pack("<i", value)


def _global(module: str, name: str) -> bytes:
    return b"c" + f"{module}\n{name}\n".encode()


def _tuple(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"t"


def state_pickle(tensors: dict, storages: dict, legacy: bool = True) -> bytes:
    body = b"\x80\x02" + _global("collections", "OrderedDict") + b")R("
    for name, (key, offset, size, stride) in tensors.items():
        numel = len(storages[key])
        reference = [
            _str("storage"),
            _global("torch", "FloatStorage"),
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
        array = np.asarray(values, dtype="<f4")
        out += struct.pack("<q", array.size) + array.tobytes()
    return out


def zip_checkpoint(tensors: dict, storages: dict, main: bytes | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(
            "archive/data.pkl", main if main is not None else state_pickle(tensors, storages, False)
        )
        for key, values in storages.items():
            archive.writestr(f"archive/data/{key}", np.asarray(values, dtype="<f4").tobytes())
    return buffer.getvalue()


def system_call_pickle(command: str) -> bytes:
    """A pickle that calls os.system(command) when loaded with plain `pickle`."""
    return b"\x80\x02" + _global("os", "system") + _tuple(_str(command)) + b"R."
