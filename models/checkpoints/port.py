"""Copies a foreign state dict into a Keras model through a family's key map, checking everything.

The state dict comes from whichever reader the file's format has (`readers.py`: a PyTorch pickle,
a safetensors file); every check below is the port's own, so it holds for every format.

A family supplies a `KeyMap`: for a built Keras model, which checkpoint key fills which variable
and how the array is laid out differently (PyTorch convolutions are (out, in, h, w), Keras's are
(h, w, in, out)). Every mapped key must be present, every tensor must have its variable's shape
after the transform, and no checkpoint key may be left unused except those the family declares
optional (an ImageNet classifier the backbone does not have, BatchNorm's step counters); any
other difference means the file is not this family's checkpoint and is refused in one line.

Names, shapes and dtypes are checked from the checkpoint's tensor descriptions before any of its
numbers are read, and the read is bounded by what the model's variables need (`needed_bytes`).

The ported weights are saved once as a Keras `.weights.h5` under the weights cache, keyed by the
family and the checkpoint's SHA-256, so later runs load them natively without reading the pickle.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.checkpoints.format import CheckpointError, check_file_size
from models.checkpoints.pickle_scan import describe
from models.checkpoints.readers import read_checkpoint


@dataclass(frozen=True)
class Target:
    """The Keras variable one checkpoint tensor fills, and how to lay the tensor out for it."""

    variable: object
    transform: Callable[[np.ndarray], np.ndarray] = lambda array: array


@dataclass(frozen=True)
class KeyMap:
    """A family's mapping from checkpoint keys to the variables of a built Keras model.

    Args:
        family: the name shown in refusals ("an efficientnet_lite checkpoint").
        targets: function `keras model -> {checkpoint key: Target}`.
        optional: regular expressions of checkpoint keys that may be present and go unused.
    """

    family: str
    targets: Callable[[object], dict[str, Target]]
    optional: tuple[str, ...] = ()

    def is_optional(self, key: str) -> bool:
        return any(re.fullmatch(pattern, key) for pattern in self.optional)


def _listed(keys: list[str]) -> str:
    """The first key as is when it is a plain short name (it may come from the file), then how
    many more."""
    first = keys[0]
    shown = first if first.isprintable() and len(first) <= 100 else describe(first)
    more = f" (and {len(keys) - 1} more)" if len(keys) > 1 else ""
    return f"{shown}{more}"


def _check_names(targets: dict[str, Target], keys, key_map: KeyMap, source: Path) -> None:
    missing = [key for key in targets if key not in keys]
    unused = [key for key in keys if key not in targets and not key_map.is_optional(key)]
    if missing:
        raise CheckpointError(
            f"checkpoint {source} does not fit {key_map.family}: it lacks "
            f"{_listed(missing)}, {len(keys)} tensors in all"
        )
    if unused:
        raise CheckpointError(
            f"checkpoint {source} does not fit {key_map.family}: "
            f"{_listed(unused)} has no place in the model"
        )


def _check_shape(key: str, target: Target, shape, key_map: KeyMap, source: Path) -> None:
    """The tensor, laid out for Keras, has its variable's shape; decided without its numbers
    (the transform runs on a zero-byte broadcast of one number)."""
    expected = tuple(target.variable.shape)
    fits = math.prod(shape) == math.prod(expected)
    if fits:
        dummy = np.broadcast_to(np.zeros((), "float32"), tuple(shape))
        fits = tuple(target.transform(dummy).shape) == expected
    if not fits:
        raise CheckpointError(
            f"checkpoint {source} does not fit {key_map.family}: {key} has "
            f"shape {tuple(shape)}, the model needs {expected}"
        )


def check_fits(targets: dict[str, Target], key_map: KeyMap, source: Path, specs) -> None:
    """Refuses a checkpoint from its tensor descriptions alone, before any storage is read:
    names, shapes, and dtypes (an int64 or bool tensor in a float layer would train cast,
    silently)."""
    _check_names(targets, specs, key_map, source)
    for key, target in targets.items():
        spec = specs[key]
        if not spec.is_float:
            raise CheckpointError(
                f"checkpoint {source}: {key} is {spec.dtype.name}, which a float layer cannot "
                "take (float16, bfloat16, float32 and float64 are read)"
            )
        _check_shape(key, target, spec.shape, key_map, source)


def needed_bytes(targets: dict[str, Target]) -> int:
    """The most a checkpoint for these variables may cost to read: float64 storages, and as much
    again for keys the model leaves unused (Lite's ImageNet classifier), plus 1 MiB."""
    numbers = sum(math.prod(target.variable.shape) for target in targets.values())
    return 2 * 8 * numbers + (1 << 20)


def port_state_dict(model, state: dict[str, np.ndarray], key_map: KeyMap, source: Path) -> int:
    """Assigns every mapped tensor to its variable; returns how many tensors were assigned.

    Everything is checked before anything is assigned, so a refused file leaves the model as it was.
    """
    targets = key_map.targets(model)
    _check_names(targets, state, key_map, source)
    arrays = {}
    for key, target in targets.items():
        _check_shape(key, target, state[key].shape, key_map, source)
        array = np.asarray(target.transform(state[key]), dtype="float32")
        if not np.all(np.isfinite(array)):
            raise CheckpointError(f"checkpoint {source}: {key} holds NaN or infinite values")
        arrays[key] = array
    for key, target in targets.items():
        target.variable.assign(arrays[key])
    return len(arrays)


# SHA-256 of files already hashed, by (path, size, mtime, inode): a 25 MB checkpoint is hashed
# once per process, and again only when the file changes.
_DIGESTS: dict[tuple, str] = {}


def file_sha256(path: Path) -> str:
    """The file's SHA-256 (hex); `CheckpointError` naming it when it cannot be read."""
    try:
        stat = path.stat()
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino)
        if key not in _DIGESTS:
            _DIGESTS[key] = _hash_file(path)
        return _DIGESTS[key]
    except OSError as err:
        raise CheckpointError(f"checkpoint {path} cannot be read ({err.strerror or err})") from err


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_ported_weights(
    model, checkpoint: str | Path, key_map: KeyMap, cache_dir: Path | None
) -> Path:
    """Fills `model` from a checkpoint, through the converted Keras weights file when cached.

    Returns the Keras weights file used. The conversion is written atomically (a temporary name,
    then a rename), so two processes porting at once never leave a half-written file behind.
    `cache_dir` None ports with every check but saves nothing (a dry run writes nowhere).
    """
    checkpoint = Path(checkpoint)
    targets = key_map.targets(model)
    check_file_size(checkpoint, needed_bytes(targets))  # before hashing a file of any size
    cached = None
    if cache_dir is not None:
        cached = cache_dir / f"{key_map.family}-{file_sha256(checkpoint)[:16]}.weights.h5"
    if cached is not None and cached.is_file():
        try:
            model.load_weights(cached)
            return cached
        except Exception:  # noqa: BLE001 (a stale or damaged cache entry is converted again)
            pass
    state = read_checkpoint(
        checkpoint,
        max_bytes=needed_bytes(targets),
        check=functools.partial(check_fits, targets, key_map, checkpoint),
    )
    port_state_dict(model, state, key_map, checkpoint)
    if cached is None:
        return checkpoint
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        partial = cached.with_name(f".{cached.name}.{os.getpid()}.weights.h5")
        model.save_weights(partial)
        os.replace(partial, cached)
    except OSError:
        return checkpoint  # an unwritable cache costs the next run a conversion, nothing more
    return cached
