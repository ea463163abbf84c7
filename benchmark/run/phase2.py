"""Which data phase 2 fine-tunes on: online images, or the fine-tune bank's activations at the cut.

`--fine-tune-features auto` (the default) takes the fine-tune bank
(`benchmark.training.finetune_bank`) where it trains the same cell: a frozen pretrained image
backbone with a clean cut at or below its fine-tune cut, no random layer below that cut, and a
bank within `--fine-tune-bank-limit` MiB and the disk's free space. Anywhere else it runs online
and prints why in one line. `bank` insists and is refused, with the reason, where the bank cannot
run; `online` always pushes every image through the whole backbone. The record's
`fine_tune_features` says which ran ("none" where the cell has no phase 2).

`benchmark.plan.phases.cell_phases` decides the path (from the facts `benchmark.run.phase_paths`
gathers); this module builds phase 2's data on the bank.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmark.output import say
from benchmark.plan.phases import MIB
from benchmark.run.folder import split_file
from benchmark.training.feature_bank import FeatureBank
from benchmark.training.finetune_bank import (
    ActivationEpochs,
    BackboneCut,
    activation_shape,
    bank_bytes,
    fine_tune_model,
    split_backbone,
    stored_activations,
    tune_bank_key,
)
from benchmark.training.head_features import feature_dataset
from benchmark.training.recipe import CachedHeadPhase, RecipeSettings
from data_pipeline import AugmentConfig, SplitTable


def bank_phase(
    cut: BackboneCut,
    split: SplitTable,
    model_name: str,
    built,
    inputs,
    batch_size: int,
    class_weights: np.ndarray,
    *,
    seed: int,
    run_dir: Path,
    augment: AugmentConfig | None,
    settings: RecipeSettings,
    fold: int | None = None,
) -> CachedHeadPhase:
    """Phase-2 model and data from the bank in `run_dir/fine_tune_bank` (filled by the first cell).

    Phase 2's epoch e reads data epoch `initial_epochs + e` (`ActivationEpochs`); validation reads
    the un-augmented validation images' activations, stored once per model.
    """
    bottom, top = split_backbone(built.backbone, cut)
    shape = activation_shape(cut)
    folder = (
        run_dir
        / "fine_tune_bank"
        / tune_bank_key(
            model_name,
            cut,
            inputs.image_size,
            built.weights,
            split_file(run_dir, fold),
            augment=augment,
            batch_size=batch_size,
            seed=seed,
        )
    )
    bank = FeatureBank(
        folder,
        bottom,
        lambda epoch: inputs.dataset(
            split, "train", batch_size, augment=augment, shuffle_seed=seed, epoch=epoch
        ),
    )
    num_train, num_val = len(split.subset("train")), len(split.subset("val"))
    if not bank.stored_epochs():
        memory, disk = bank_bytes(shape, num_train, num_val, settings.fine_tune_epochs)
        say(
            f"fine-tune bank for {model_name} at {cut.layer!r} "
            f"({'x'.join(map(str, shape))} an image, "
            f"{bank.dtype}) in {folder}: {memory / MIB:.1f} MiB an epoch in memory, up to "
            f"{disk / MIB:.1f} MiB on disk"
        )
    val = stored_activations(bottom, inputs.dataset(split, "val", batch_size), folder / "val.npy")
    val_data = feature_dataset(val, split.label_indices("val"), len(split.class_names), batch_size)
    feeder = ActivationEpochs(
        bank, class_weights, batch_size, shape, num_train, offset=settings.initial_epochs
    )
    return CachedHeadPhase(
        model=fine_tune_model(built, top),
        train=feeder.dataset(),
        val=val_data,
        callbacks=[feeder],
        bank=bank,
    )
