"""Which data phase 2 fine-tunes on: online images, or the fine-tune bank's activations at the cut.

`--fine-tune-features auto` (the default) takes the fine-tune bank
(`benchmark.training.finetune_bank`) where it trains the same cell: a frozen pretrained image
backbone with a clean cut at or below its fine-tune cut, no random layer below that cut, and a
bank within `--fine-tune-bank-limit` MiB and the disk's free space. Anywhere else it runs online
and prints why in one line. `bank` insists and is refused, with the reason, where the bank cannot
run; `online` always pushes every image through the whole backbone. The record's
`fine_tune_features` says which ran ("none" where the cell has no phase 2).
This module decides (and keeps the path a resumed cell took); `benchmark.training.banks` builds
the phase on the bank.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from benchmark.config.run_config import RunConfig
from benchmark.errors import UsageError
from benchmark.io import write_text_atomic
from benchmark.plan.model_plan import NO_STORED_FEATURES
from benchmark.training.finetune_bank import (
    MIB,
    BackboneCut,
    activation_shape,
    bank_bytes,
    bottom_randomness,
    find_cut,
)
from benchmark.training.head_features import supports_cached_features
from benchmark.training.recipe import RecipeSettings


@dataclass
class Phase2Plan:
    """What phase 2 of one cell will train on, and why: `mode` is "bank", "online" or "none"."""

    mode: str
    reason: str = ""  # why not the bank ("" when it runs)
    cut: BackboneCut | None = None


def structural_refusal(built, settings: RecipeSettings) -> tuple[BackboneCut | None, str]:
    """The clean cut of a built model, or why its phase 2 cannot run on stored activations."""
    if (
        built.text_backbone is not None
        or built.blocks is not None
        or not supports_cached_features(built)
    ):
        return None, NO_STORED_FEATURES
    cut, reason = find_cut(built.backbone, settings.fine_tune_layers)
    if cut is None:
        return None, reason
    if random_layer := bottom_randomness(built.backbone, cut):
        return (
            None,
            f"layer {random_layer!r} below the cut draws random numbers: "
            "stored activations would not match",
        )
    return cut, ""


def plan_phase2(
    config: RunConfig,
    built,
    settings: RecipeSettings,
    *,
    num_train: int,
    num_val: int,
    folder: Path,
) -> Phase2Plan:
    """Bank or online for one built cell under `config` (see the module docstring)."""
    if (
        built.from_scratch
        or settings.fine_tune_layers in (0, "0")
        or settings.fine_tune_epochs == 0
    ):
        return Phase2Plan("none", "no phase 2")
    if config.fine_tune_features == "online":
        return Phase2Plan("online", "--fine-tune-features online")
    cut, reason = structural_refusal(built, settings)
    if cut is not None:
        memory, disk = bank_bytes(
            activation_shape(cut), num_train, num_val, settings.fine_tune_epochs
        )
        free = shutil.disk_usage(next(p for p in (folder, *folder.parents) if p.exists())).free
        limit = config.fine_tune_bank_limit * MIB
        if max(memory, disk) > limit:
            reason = (
                f"the bank would take {disk / MIB:.1f} MiB on disk "
                f"({memory / MIB:.1f} MiB an epoch in "
                f"memory), over --fine-tune-bank-limit {config.fine_tune_bank_limit:g}"
            )
        elif disk > free:
            reason = (
                f"the bank would take {disk / MIB:.1f} MiB, "
                f"more than the {free / MIB:.1f} MiB free on disk"
            )
    if reason and config.fine_tune_features == "bank":
        raise UsageError(
            f"--fine-tune-features bank: {reason}; use --fine-tune-features auto or online"
        )
    return Phase2Plan("online", reason) if reason else Phase2Plan("bank", cut=cut)


PATH_FILE = "fine_tune_features.txt"  # in the work folder: the path phase-2 backups follow


def phase2_on_resume(work: Path, planned: str) -> tuple[str, str]:
    """The phase-2 path a cell takes given its work folder, and a note when that is not `planned`.

    Phase-2 backups hold the weights of the model that trained: the full model online, the model
    from the cut on the bank. A resumed cell must load them into the same model, so it keeps the
    path they were written on; a folder from before the bank has backups and no path file, and ran
    online. Backups from the bank that the new plan cannot use (it went online) are dropped.
    """
    backups = [work / "fine_tune", work / "fine_tune.done.json", work / "fine_tune.done.weights.h5"]
    path_file = work / PATH_FILE
    started = path_file.read_text().strip() if path_file.is_file() else "online"
    if planned == "none" or started == planned or not any(p.exists() for p in backups):
        return planned, ""
    if started == "online":
        return "online", "phase 2 resumes online, the path its backups were written on"
    for path in backups:
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    return planned, f"phase 2 restarts {planned}: its backups were written on the fine-tune bank"


def record_phase2_path(work: Path, mode: str) -> None:
    """Writes the path phase 2 takes (before it starts), for `phase2_on_resume`."""
    if mode != "none":
        write_text_atomic(work / PATH_FILE, mode)
