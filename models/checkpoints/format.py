"""The interface every checkpoint format implements, and what all of them share.

A format is a `CheckpointReader`: how its files are recognised (name endings, first bytes) and a
`read` that turns a file into name -> numpy array without running anything the file says. The
port (`port.py`) never knows which format it reads: every reader hands its caller's `check` each
tensor's `TensorSpec` before a byte of its numbers is read, is held to `max_bytes`, and refuses in
one line naming the file (`CheckpointError`), so the port's checks (names, shapes, dtypes, bounded
cost) hold for every format alike. `readers.py` chooses the reader for a file.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.errors import ModelError

# What a file may hold besides the numbers its model needs: a PyTorch file's pickles (names and
# tensor descriptions; Lite2's take 62 kB), a safetensors file's JSON header. 1 MiB describes
# some 5,000 tensors.
MAX_DESCRIPTION_BYTES = 1 << 20
# Bytes of tensors (and of copied views) a read may cost when its caller does not say: a few
# times any Lite checkpoint. The port passes what its model needs instead.
DEFAULT_MAX_BYTES = 128 << 20


class CheckpointError(ModelError):
    """A checkpoint that cannot be admitted; the message is one line naming the file."""


@dataclass(frozen=True)
class TensorSpec:
    """What a checkpoint says one tensor is, known before any of its numbers are read."""

    dtype: np.dtype
    shape: tuple[int, ...]
    is_float: bool

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


# `check(specs)` raises `CheckpointError` to refuse a file from its tensor descriptions.
Check = Callable[[dict[str, TensorSpec]], None]


@dataclass(frozen=True)
class CheckpointReader:
    """One checkpoint format.

    Args:
        format: its name in messages ("PyTorch pickle", "safetensors").
        suffixes: file name endings that choose it whatever the file holds (a file that claims
            a format by its name and is not of it is refused, not read as another).
        sniff: function `first 16 bytes -> bool`: whether a file of another name starts as this
            format's files do.
        read: function `(path, max_bytes, check) -> {name: array}`: bounded by `max_bytes`
            (bytes of tensors and copies), calls `check` (when not None) with every tensor's
            `TensorSpec` before any numbers are read, and raises `CheckpointError` naming the
            file for anything it refuses.
    """

    format: str
    suffixes: tuple[str, ...]
    sniff: Callable[[bytes], bool]
    read: Callable[[Path, int, Check | None], dict[str, np.ndarray]]


def check_file_size(path: Path, max_bytes: int) -> None:
    """Refuses a file larger than tensors of `max_bytes` and their descriptions can make, before
    it is hashed or read."""
    try:
        size = path.stat().st_size
    except OSError as err:
        raise CheckpointError(f"checkpoint {path} cannot be read ({err.strerror or err})") from err
    if size > max_bytes + MAX_DESCRIPTION_BYTES:
        raise CheckpointError(
            f"checkpoint {path} refused: it is {size} bytes, more than the "
            f"{max_bytes + MAX_DESCRIPTION_BYTES} allowed for it"
        )


def refusal(path: Path, err: BaseException) -> CheckpointError:
    """The one-line refusal naming the file, from whatever a reader's parsing raised."""
    reason = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
    return CheckpointError(f"checkpoint {path} refused: {reason}")
