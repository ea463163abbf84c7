"""Which data phase 1 trains the head on: the online images, stored features, or the augmented
feature bank.

`--head-features auto` (the default) takes the cheapest path that trains the same head: with
augmentation on, the augmented feature bank (`benchmark.training.feature_bank`); without it, the
plain stored features (`benchmark.training.head_features`); online where the model has no frozen
pretrained image backbone to share (from scratch, `--weights none`, text, fusion). `cached` insists
on stored features (bank or plain) and is refused, in one line, for a model that cannot have them;
`online` always pushes every image through the backbone. The record's `head_features` says which
ran. The plan chooses the path and `benchmark.plan.phases.cell_phases` settles it per cell; this
module builds the phase's data for the stored paths.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmark.output import say
from benchmark.run.folder import split_file
from benchmark.training.feature_bank import BankEpochs, FeatureBank, bank_cost, bank_key
from benchmark.training.head_features import (
    POOL_LAYER,
    cached_features,
    feature_dataset,
    feature_extractor,
    features_key,
    head_model,
)
from benchmark.training.recipe import CachedHeadPhase
from data_pipeline import AugmentConfig, SplitTable


def stored_head_phase(
    mode: str,
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
    epochs: int,
    fold: int | None = None,
) -> CachedHeadPhase:
    """Phase-1 data from the run folder's stored backbone features (computed by the first alpha
    cell).

    Validation features are the un-augmented, stored once per model; training features are the same
    (mode "cached") or epoch e's augmented features from the bank (mode "bank"); `epochs` is the
    phase-1 budget, for the bank's cost line.
    """
    splits = split_file(run_dir, fold)  # the cell's own split: a K-fold run has one per fold
    num_classes = len(split.class_names)

    def stored(part: str) -> np.ndarray:
        key = features_key(model_name, inputs.image_size, built.weights, splits, part)
        cache_file = run_dir / "features" / f"{key}.npy"
        return cached_features(
            built, inputs.dataset(split, part, batch_size), cache_file, rows=len(split.subset(part))
        )

    val = feature_dataset(stored("val"), split.label_indices("val"), num_classes, batch_size)
    if mode == "cached":
        train = feature_dataset(
            stored("train"),
            split.label_indices("train"),
            num_classes,
            batch_size,
            sample_weights=class_weights,
            shuffle_seed=seed,
        )
        return CachedHeadPhase(model=head_model(built), train=train, val=val)

    folder = (
        run_dir
        / "features"
        / bank_key(
            model_name,
            inputs.image_size,
            built.weights,
            splits,
            augment=augment,
            batch_size=batch_size,
            seed=seed,
        )
    )
    bank = FeatureBank(
        folder,
        feature_extractor(built),
        lambda epoch: inputs.dataset(
            split, "train", batch_size, augment=augment, shuffle_seed=seed, epoch=epoch
        ),
    )
    feature_dim = int(built.model.get_layer(POOL_LAYER).output.shape[-1])
    if not bank.stored_epochs():
        say(
            f"feature bank for {model_name} in {folder}: "
            f"{bank_cost(len(split.subset('train')), feature_dim, epochs)}"
        )
    feeder = BankEpochs(bank, class_weights, batch_size, feature_dim, len(split.subset("train")))
    return CachedHeadPhase(
        model=head_model(built), train=feeder.dataset(), val=val, callbacks=[feeder], bank=bank
    )
