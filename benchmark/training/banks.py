"""Both banks of a cell from one description: what they store, under which name, and what they feed.

A cell's stored phase-1 features (plain, or the augmented feature bank of `feature_bank`) and its
fine-tune bank (`finetune_bank`) are computed from the same images, drawn the same way, by the same
model: they differ only in where the backbone is cut. `BankInputs` is that shared description, made
once per cell by the runner (which alone knows the run folder and the cell's split file), and
`bank_key` the one folder name both banks derive from it, so the two cannot disagree on what makes
a stored bank reusable. `stored_phases` is the runner's one call: it turns the paths the cell's plan
settled into the phases' models and data.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import tensorflow as tf

from benchmark.output import say
from benchmark.training import feature_bank
from benchmark.training.feature_bank import BankEpochs, FeatureBank, bank_cost
from benchmark.training.finetune_bank import (
    MIB,
    ActivationEpochs,
    BackboneCut,
    activation_shape,
    bank_bytes,
    fine_tune_model,
    split_backbone,
    stored_activations,
)
from benchmark.training.head_features import (
    POOL_LAYER,
    cached_features,
    feature_dataset,
    feature_extractor,
    features_key,
    head_model,
)
from benchmark.training.recipe import CachedHeadPhase
from benchmark.training.settings import RecipeSettings
from data_pipeline import AugmentConfig, SplitTable
from models import BuiltModel


class CellData(Protocol):
    """How a cell's images are fed (the runner's `CellInputs`): their side, and each part's data."""

    image_size: int

    def dataset(
        self, split: SplitTable, part: str, batch_size: int, **kwargs
    ) -> tf.data.Dataset: ...


@dataclass(frozen=True, eq=False)
class BankInputs:
    """What both banks of one cell are computed from.

    All of it but `class_weights` is in the banks' key (`bank_key`): the class weights only scale
    the loss above the stored tensors, so every alpha cell of a model shares its banks.
    """

    model_name: str
    built: BuiltModel
    inputs: CellData
    split: SplitTable
    split_file: Path  # the cell's own split (one per fold): its bytes stand for the images
    root: Path  # the run folder (a search's DIR): banks live in root/features, root/fine_tune_bank
    batch_size: int
    class_weights: np.ndarray
    seed: int
    augment: AugmentConfig | None

    def epoch_images(self, epoch: int) -> tf.data.Dataset:
        """Data epoch `epoch`'s training images in their order: what both banks store."""
        return self.inputs.dataset(
            self.split,
            "train",
            self.batch_size,
            augment=self.augment,
            shuffle_seed=self.seed,
            epoch=epoch,
        )

    def num_images(self, part: str) -> int:
        return len(self.split.subset(part))


def bank_key(bank: BankInputs, cut: str | None = None, dtype: str | None = None) -> str:
    """Folder name of a bank: everything that decides epoch e's stored tensors.

    `cut` names the fine-tune bank's cut layer (None: the feature bank, at the pooled output).
    No augmentation is a recipe of its own (`"augment": null`): the fine-tune bank runs without
    it, while the feature bank never does (un-augmented, phase 1 reads the plain stored features),
    so the folder names both banks wrote before this one function stay valid.
    """
    digest = hashlib.sha1(bank.split_file.read_bytes()).hexdigest()[:12]
    recipe = {
        "weights": bank.built.weights,
        "augment": None if bank.augment is None else bank.augment.key(),
        "batch_size": bank.batch_size,
        "dtype": dtype or feature_bank.BANK_DTYPE,
    }
    if cut is not None:
        recipe["cut"] = cut
    tag = hashlib.sha1(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:10]
    kind = "bank" if cut is None else f"{cut}_tune"
    return f"{bank.model_name}_{bank.inputs.image_size}px_{digest}_{kind}-{tag}_seed{bank.seed}"


def stored_head_phase(bank: BankInputs, mode: str, epochs: int) -> CachedHeadPhase:
    """Phase-1 data from the run folder's stored backbone features (computed by the first alpha
    cell).

    Validation features are the un-augmented, stored once per model; training features are the same
    (mode "cached") or epoch e's augmented features from the bank (mode "bank"); `epochs` is the
    phase-1 budget, for the bank's cost line.
    """
    split, built, batch_size = bank.split, bank.built, bank.batch_size
    num_classes = len(split.class_names)

    def stored(part: str) -> np.ndarray:
        key = features_key(
            bank.model_name, bank.inputs.image_size, built.weights, bank.split_file, part
        )
        return cached_features(
            built,
            bank.inputs.dataset(split, part, batch_size),
            bank.root / "features" / f"{key}.npy",
            rows=bank.num_images(part),
        )

    val = feature_dataset(stored("val"), split.label_indices("val"), num_classes, batch_size)
    if mode == "cached":
        train = feature_dataset(
            stored("train"),
            split.label_indices("train"),
            num_classes,
            batch_size,
            sample_weights=bank.class_weights,
            shuffle_seed=bank.seed,
        )
        return CachedHeadPhase(model=head_model(built), train=train, val=val)

    folder = bank.root / "features" / bank_key(bank)
    features = FeatureBank(folder, feature_extractor(built), bank.epoch_images)
    feature_dim = int(built.model.get_layer(POOL_LAYER).output.shape[-1])
    num_train = bank.num_images("train")
    if not features.stored_epochs():
        say(
            f"feature bank for {bank.model_name} in {folder}: "
            f"{bank_cost(num_train, feature_dim, epochs)}"
        )
    feeder = BankEpochs(features, bank.class_weights, batch_size, feature_dim, num_train)
    return CachedHeadPhase(
        model=head_model(built), train=feeder.dataset(), val=val, callbacks=[feeder], bank=features
    )


def fine_tune_bank_phase(
    bank: BankInputs, cut: BackboneCut, settings: RecipeSettings
) -> CachedHeadPhase:
    """Phase-2 model and data from the bank in `root/fine_tune_bank` (filled by the first cell).

    Phase 2's epoch e reads data epoch `initial_epochs + e` (`ActivationEpochs`); validation reads
    the un-augmented validation images' activations, stored once per model.
    """
    split, batch_size = bank.split, bank.batch_size
    bottom, top = split_backbone(bank.built.backbone, cut)
    shape = activation_shape(cut)
    folder = bank.root / "fine_tune_bank" / bank_key(bank, cut=cut.layer)
    activations = FeatureBank(folder, bottom, bank.epoch_images)
    num_train, num_val = bank.num_images("train"), bank.num_images("val")
    if not activations.stored_epochs():
        memory, disk = bank_bytes(shape, num_train, num_val, settings.fine_tune_epochs)
        say(
            f"fine-tune bank for {bank.model_name} at {cut.layer!r} "
            f"({'x'.join(map(str, shape))} an image, "
            f"{activations.dtype}) in {folder}: {memory / MIB:.1f} MiB an epoch in memory, up to "
            f"{disk / MIB:.1f} MiB on disk"
        )
    val = stored_activations(
        bottom, bank.inputs.dataset(split, "val", batch_size), folder / "val.npy"
    )
    val_data = feature_dataset(val, split.label_indices("val"), len(split.class_names), batch_size)
    feeder = ActivationEpochs(
        activations,
        bank.class_weights,
        batch_size,
        shape,
        num_train,
        offset=settings.initial_epochs,
    )
    return CachedHeadPhase(
        model=fine_tune_model(bank.built, top),
        train=feeder.dataset(),
        val=val_data,
        callbacks=[feeder],
        bank=activations,
    )


def stored_phases(
    bank: BankInputs, *, head: str, cut: BackboneCut | None, settings: RecipeSettings
) -> tuple[CachedHeadPhase | None, CachedHeadPhase | None]:
    """(phase 1, phase 2) on stored tensors, as the cell's settled paths say; None runs online.

    `head` is phase 1's path ("bank", "cached" or "online"); `cut` is where phase 2's bank cuts the
    backbone, None when phase 2 does not run on the bank.
    """
    head_phase = None
    if head != "online":
        head_phase = stored_head_phase(bank, head, settings.initial_epochs)
    tune_phase = None if cut is None else fine_tune_bank_phase(bank, cut, settings)
    return head_phase, tune_phase
