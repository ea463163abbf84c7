"""Checks of a resolved configuration against the model registry and the file system.

Each one catches input that `RunConfig` alone cannot judge (which models the grid holds, whether
a file exists) and that would otherwise pass `--dry-run` and then fail cells. `run_benchmark.py`
runs them before a run, a Slurm grid or a search starts, and `--dry-run` runs them too.
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from benchmark.config.run_config import RunConfig
from benchmark.errors import UsageError
from benchmark.run.grid import expand_components
from models import get_entry, resolve_model_names

# `--weights` values that name no file.
WEIGHTS_KEYWORDS = ("imagenet", "none", "")


def check_inputs(config: RunConfig) -> None:
    """Refuses, in one line naming the flag, a grid that cannot train as asked."""
    names = expand_components(resolve_model_names(config.models))
    check_zero_shot_size(names, config.image_size)
    check_weights_file(names, config.weights)


def check_zero_shot_size(names: list[str], image_size: int | None) -> None:
    """Zero-shot rows run at their preset's side; another `--image-size` aborted the grid."""
    entries = [get_entry(name) for name in names]
    fixed = [e for e in entries if e.zero_shot and image_size and image_size != e.input_size]
    if fixed:
        sides = ", ".join(f"{entry.name} ({entry.input_size} px)" for entry in fixed)
        raise UsageError(f"--image-size {image_size} cannot apply to zero-shot rows, which run at "
                         f"their preset's side: {sides}; drop --image-size, or run them in a grid "
                         "of their own")


def takes_weights_file(name: str) -> bool:
    """Whether `--weights FILE` reaches `name`: a Keras application, or early fusion built on one.

    Networks trained from scratch, text models, keras-hub encoders and zero-shot rows (they load
    their preset, or nothing) and late fusion (it combines trained cells) never read the file.
    """
    entry = get_entry(name)
    if entry.image_model:
        return takes_weights_file(entry.image_model)
    return (entry.modality == "image" and entry.pretrained and entry.preset is None
            and not entry.zero_shot and not entry.components)


def check_weights_file(names: list[str], weights: str) -> None:
    """A `--weights` file must exist and reach a model of the grid; the others are named."""
    if weights in WEIGHTS_KEYWORDS:
        return
    if not Path(weights).expanduser().is_file():
        raise UsageError(f"--weights file {weights!r} does not exist; "
                         "pass imagenet, none or an existing weights file")
    ignoring = [name for name in names if not takes_weights_file(name)]
    if len(ignoring) == len(names):
        raise UsageError(f"--weights {weights!r}: no model of the grid reads a weights file "
                         f"({', '.join(names)}: trained from scratch or loaded from a preset); "
                         "leave --weights out")
    if ignoring:
        readers = ", ".join(name for name in names if name not in ignoring)
        print(f"note: --weights {weights!r} is read by {readers} only; "
              f"not by {', '.join(ignoring)}", file=sys.stderr)


# Folders a run writes into; one that is a file (say `RUN/tensorboard`) would fail every cell.
RUN_SUBFOLDERS = ("cells", "work", "cache", "locks")


def check_output_folder(run_dir: Path, *, tensorboard: bool = False) -> None:
    """`--output` must be a folder this process can create or write into (checked before training).

    Writability is probed by creating (and removing) an empty folder: `os.access` says yes to root
    everywhere, `/proc` included, where creating a folder then fails.
    """
    if run_dir.exists() and not run_dir.is_dir():
        raise UsageError(f"--output {str(run_dir)!r} is an existing file; give a folder "
                         "(a new one, or a run to resume)")
    existing = next(p for p in (run_dir, *run_dir.parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"--output {str(run_dir)!r} cannot be created: {str(existing)!r} is not a "
                         "writable folder")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".write-probe-", dir=existing))
    except OSError as err:
        raise UsageError(f"--output {str(run_dir)!r} cannot be created: {str(existing)!r} is not a "
                         f"writable folder ({err.strerror})") from None
    for name in RUN_SUBFOLDERS + (("tensorboard",) if tensorboard else ()):
        if (run_dir / name).exists() and not (run_dir / name).is_dir():
            raise UsageError(f"{str(run_dir / name)!r} is a file, but the run writes a folder "
                             "there; move the file away or use another --output")
