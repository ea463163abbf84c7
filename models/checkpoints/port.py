"""Copies a foreign state dict into a Keras model through a family's key map, checking everything.

A family supplies a `KeyMap`: for a built Keras model, which checkpoint key fills which variable
and how the array is laid out differently (PyTorch convolutions are (out, in, h, w), Keras's are
(h, w, in, out)). Every mapped key must be present, every tensor must have its variable's shape
after the transform, and no checkpoint key may be left unused except those the family declares
optional (an ImageNet classifier the backbone does not have, BatchNorm's step counters); any
other difference means the file is not this family's checkpoint and is refused in one line.

The ported weights are saved once as a Keras `.weights.h5` under the weights cache, keyed by the
family and the checkpoint's SHA-256, so later runs load them natively without reading the pickle.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.checkpoints.torch_pickle import CheckpointError, read_state_dict


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
    more = f" (and {len(keys) - 1} more)" if len(keys) > 1 else ""
    return f"{keys[0]}{more}"


def port_state_dict(model, state: dict[str, np.ndarray], key_map: KeyMap, source: Path) -> int:
    """Assigns every mapped tensor to its variable; returns how many tensors were assigned.

    Everything is checked before anything is assigned, so a refused file leaves the model as it was.
    """
    targets = key_map.targets(model)
    missing = [key for key in targets if key not in state]
    unused = [key for key in state if key not in targets and not key_map.is_optional(key)]
    if missing:
        raise CheckpointError(
            f"checkpoint {source} does not fit {key_map.family}: it lacks "
            f"{_listed(missing)}, {len(state)} tensors in all"
        )
    if unused:
        raise CheckpointError(
            f"checkpoint {source} does not fit {key_map.family}: "
            f"{_listed(unused)} has no place in the model"
        )
    arrays = {}
    for key, target in targets.items():
        array = np.asarray(target.transform(state[key]), dtype="float32")
        expected = tuple(target.variable.shape)
        if array.shape != expected:
            raise CheckpointError(
                f"checkpoint {source} does not fit {key_map.family}: {key} has "
                f"shape {tuple(state[key].shape)}, the model needs {expected}"
            )
        if not np.all(np.isfinite(array)):
            raise CheckpointError(f"checkpoint {source}: {key} holds NaN or infinite values")
        arrays[key] = array
    for key, target in targets.items():
        target.variable.assign(arrays[key])
    return len(arrays)


def checkpoint_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_ported_weights(model, checkpoint: str | Path, key_map: KeyMap, cache_dir: Path) -> Path:
    """Fills `model` from a checkpoint, through the converted Keras weights file when cached.

    Returns the Keras weights file used. The conversion is written atomically (a temporary name,
    then a rename), so two processes porting at once never leave a half-written file behind.
    """
    checkpoint = Path(checkpoint)
    cached = cache_dir / f"{key_map.family}-{checkpoint_digest(checkpoint)[:16]}.weights.h5"
    if cached.is_file():
        try:
            model.load_weights(cached)
            return cached
        except Exception:  # noqa: BLE001 (a stale or damaged cache entry is converted again)
            pass
    port_state_dict(model, read_state_dict(checkpoint), key_map, checkpoint)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        partial = cached.with_name(f".{cached.name}.{os.getpid()}.weights.h5")
        model.save_weights(partial)
        os.replace(partial, cached)
    except OSError:
        return checkpoint  # an unwritable cache costs the next run a conversion, nothing more
    return cached
