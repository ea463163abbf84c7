"""Which reader opens a checkpoint file: chosen by its name, else by its first bytes.

A file whose name ends as one format's (`.pth`, `.safetensors`) is read by that format's reader
only, so a file that is not what its name says is refused in that format's words rather than
read as something else. A file of any other name goes to the first reader whose `sniff` accepts
its first bytes, else to the PyTorch reader (whose refusal names the file). A family with a
format of its own passes its `CheckpointReader` to `register_reader`; nothing here or in the port
changes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from models.checkpoints.format import (
    DEFAULT_MAX_BYTES,
    Check,
    CheckpointError,
    CheckpointReader,
)
from models.checkpoints.safetensors_file import SAFETENSORS
from models.checkpoints.torch_pickle import TORCH_PICKLE

# Sniffed in this order: safetensors' start (a bounded length, then "{") is the stricter test.
READERS: list[CheckpointReader] = [SAFETENSORS, TORCH_PICKLE]
# How many first bytes `sniff` sees.
HEAD_BYTES = 16


def register_reader(reader: CheckpointReader) -> CheckpointReader:
    """Adds a checkpoint format; a name ending that another format already claims raises."""
    claimed = {suffix for known in READERS for suffix in known.suffixes}
    taken = sorted(claimed & {suffix.lower() for suffix in reader.suffixes})
    if taken or any(known.format == reader.format for known in READERS):
        raise ValueError(f"checkpoint format {reader.format!r} is registered twice ({taken})")
    READERS.append(reader)
    return reader


def reader_for(path: Path) -> CheckpointReader:
    """The reader of `path`: by its name ending, else by its first bytes, else PyTorch's."""
    name = path.name.lower()
    for reader in READERS:
        if name.endswith(reader.suffixes):
            return reader
    try:
        with open(path, "rb") as handle:
            head = handle.read(HEAD_BYTES)
    except OSError as err:
        raise CheckpointError(f"checkpoint {path} cannot be read ({err.strerror or err})") from err
    return next((reader for reader in READERS if reader.sniff(head)), TORCH_PICKLE)


def read_checkpoint(
    path: str | Path, max_bytes: int = DEFAULT_MAX_BYTES, check: Check | None = None
) -> dict[str, np.ndarray]:
    """Name -> numpy array of a checkpoint in any registered format (see `CheckpointReader.read`
    for `max_bytes` and `check`); `CheckpointError` (one line naming the file) otherwise."""
    path = Path(path)
    return reader_for(path).read(path, max_bytes, check)
