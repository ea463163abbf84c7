"""What a built cell and its work folder tell the plan about its phases, and acting on the answer.

`benchmark.plan.phases.cell_phases` decides each cell's phase paths; the facts it weighs that only
exist once the model is built (its fine-tune cut, the bank's size, the free disk) or once the cell
has run before (the path its phase-2 backups were written on) are gathered here, and
`settled_phases` asks it once per cell and carries out what it says in the work folder.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from benchmark.io import write_text_atomic
from benchmark.output import say
from benchmark.plan.model_plan import NO_STORED_FEATURES
from benchmark.plan.phases import PhasePaths, TuneBankFacts, cell_phases
from benchmark.training.finetune_bank import (
    BackboneCut,
    activation_shape,
    bank_bytes,
    bottom_randomness,
    find_cut,
)
from benchmark.training.head_features import supports_cached_features
from benchmark.training.recipe import RecipeSettings


def settled_phases(
    config, plan, built, settings: RecipeSettings, split, run_dir: Path, work: Path | None
) -> PhasePaths:
    """`cell_phases`' answer for one built cell, called once; says in a line when phase 2 goes
    online under `auto` or a resumed cell changes its path, and acts on that answer in `work`."""
    paths = cell_phases(
        plan,
        config,
        stores_features=supports_cached_features(built),
        tune_bank=lambda: tune_bank_facts(
            built,
            settings,
            num_train=len(split.subset("train")),
            num_val=len(split.subset("val")),
            folder=run_dir,
        ),
        resumed_tune=resumed_tune_path(work) if work is not None else None,
    )
    if paths.tune == "online" and paths.reason and config.fine_tune_features == "auto":
        say(f"{plan.name}: phase 2 runs online: {paths.reason}")
    if work is not None:
        if paths.note:
            say(f"{work.name}: {paths.note}")
        if paths.drop_tune_backups:
            drop_tune_backups(work)
        record_phase2_path(work, paths.tune)
    return paths


def structural_refusal(built, fine_tune_layers: int | str) -> tuple[BackboneCut | None, str]:
    """The clean cut of a built model, or why its phase 2 cannot run on stored activations."""
    if (
        built.text_backbone is not None
        or built.blocks is not None
        or not supports_cached_features(built)
    ):
        return None, NO_STORED_FEATURES
    cut, reason = find_cut(built.backbone, fine_tune_layers)
    if cut is None:
        return None, reason
    if random_layer := bottom_randomness(built.backbone, cut):
        return (
            None,
            f"layer {random_layer!r} below the cut draws random numbers: "
            "stored activations would not match",
        )
    return cut, ""


def tune_bank_facts(
    built, settings: RecipeSettings, *, num_train: int, num_val: int, folder: Path
) -> TuneBankFacts:
    """What `built` says about phase 2 on the bank: its cut, and the bank's bytes beside the free
    disk under `folder` (for `benchmark.plan.phases.cell_phases`, which decides)."""
    cut, reason = structural_refusal(built, settings.fine_tune_layers)
    if cut is None:
        return TuneBankFacts(None, reason)
    memory, disk = bank_bytes(activation_shape(cut), num_train, num_val, settings.fine_tune_epochs)
    free = shutil.disk_usage(next(p for p in (folder, *folder.parents) if p.exists())).free
    return TuneBankFacts(cut, memory=memory, disk=disk, free=free)


PATH_FILE = "fine_tune_features.txt"  # in the work folder: the path phase-2 backups follow


TUNE_BACKUPS = ("fine_tune", "fine_tune.done.json", "fine_tune.done.weights.h5")


def resumed_tune_path(work: Path) -> str | None:
    """The path a cell's phase-2 backups were written on, None where it has none.

    A folder from before the bank has backups and no path file: it ran online. Which path the
    resumed cell takes is `benchmark.plan.phases.cell_phases`' answer.
    """
    if not any((work / name).exists() for name in TUNE_BACKUPS):
        return None
    path_file = work / PATH_FILE
    return path_file.read_text().strip() if path_file.is_file() else "online"


def drop_tune_backups(work: Path) -> None:
    """Removes phase-2 backups that the new path cannot load (they were written on the bank)."""
    for path in (work / name for name in TUNE_BACKUPS):
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)


def record_phase2_path(work: Path, mode: str) -> None:
    """Writes the path phase 2 takes (before it starts), for `resumed_tune_path`."""
    if mode != "none":
        write_text_atomic(work / PATH_FILE, mode)
