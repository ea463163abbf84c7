"""The fine-tune bank: where a backbone may be cut, that phase 2 on it equals phase 2 online, and
that it is safe to share."""

import threading
from pathlib import Path

import numpy as np
import pytest
from stand_ins import SIZE, colour_split, residual_stand_in

from benchmark.run.cell import CellInputs
from benchmark.training.feature_bank import FeatureBank
from benchmark.training.finetune_bank import (
    ActivationEpochs,
    activation_shape,
    bottom_randomness,
    find_cut,
    fine_tune_model,
    split_backbone,
)
from benchmark.training.freezing import unfreeze_top
from benchmark.training.optimizer import compile_model, make_optimizer
from data_pipeline import AugmentConfig

AUGMENT = AugmentConfig(strength=1.0)
BATCH = 6
OFFSET = 2  # phase 1's epoch budget: phase 2's epoch e is data epoch OFFSET + e
WEIGHTS = np.array([1.0, 2.0, 0.5], np.float32)


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    return colour_split(tmp_path_factory.mktemp("colours"))


def inputs_for(folder: Path) -> CellInputs:
    return CellInputs(
        image_size=SIZE, preprocess=None, modality="image", cache_dir=folder / "cache"
    )


def bank_for(built, split, folder: Path, layers=2, dtype="float32") -> FeatureBank:
    """A bank of `built`'s activations at its cut for `layers` fine-tuned layers."""
    inputs = inputs_for(folder)
    bottom, _ = split_backbone(built.backbone, find_cut(built.backbone, layers)[0])
    return FeatureBank(
        folder / "bank",
        bottom,
        lambda e: inputs.dataset(split, "train", BATCH, augment=AUGMENT, shuffle_seed=0, epoch=e),
        dtype=dtype,
    )


def test_cuts_are_taken_only_where_one_tensor_crosses():
    backbone = residual_stand_in().backbone
    cut, reason = find_cut(backbone, 2)  # conv_c and bn_c train: add's output is all they read
    assert (cut.layer, cut.moved, reason) == ("conv_c", 0, "")
    cut, _ = find_cut(backbone, 3)  # the fine-tune cut at `add` has the shortcut crossing it ...
    assert (cut.layer, cut.moved) == (
        "conv_b",
        2,
    )  # ... so the bank stores bn_a's output, below the block
    assert activation_shape(cut) == (SIZE - 2, SIZE - 2, 8)
    assert find_cut(backbone, "all")[0] is None


@pytest.mark.parametrize(
    "name, layer, moved, random",
    [
        (
            "efficientnet_lite0",
            "block8_expand_conv",
            0,
            "",
        ),  # the first layer of stage 5: clean as it is
        (
            "mobilenet_v2",
            "block_11_expand",
            6,
            "",
        ),  # the default cut is inside block 11: moved to its start
        ("efficientnet_b0", "block6c_expand_conv", 6, "block2b_drop"),  # drop-connect below: online
    ],
)
def test_the_cuts_of_real_families(name, layer, moved, random):
    from models import BuildSpec, build_model, get_entry

    backbone = build_model(name, BuildSpec(num_classes=3, image_size=32, weights="none")).backbone
    cut, reason = find_cut(backbone, get_entry(name).fine_tune_layers)
    assert (cut.layer, cut.moved, reason) == (layer, moved, "")
    assert bottom_randomness(backbone, cut) == random


def test_the_split_shares_the_built_layers_and_recomposes_the_backbone():
    built = residual_stand_in()
    cut, _ = find_cut(built.backbone, 3)
    bottom, top = split_backbone(built.backbone, cut)
    images = np.random.default_rng(0).uniform(0, 255, (4, SIZE, SIZE, 3)).astype(np.float32)
    np.testing.assert_allclose(
        top(bottom(images)), built.backbone(images, training=False), atol=1e-5
    )
    assert top.get_layer("conv_c") is built.backbone.get_layer("conv_c")
    tuned = fine_tune_model(built, top)
    assert {id(w) for w in tuned.weights} <= {
        id(w) for w in built.model.weights
    }  # no copy: training it trains the model
    assert "conv_a" not in {layer.name for layer in top.layers}


def fine_tune(path, epochs, callbacks=()):
    """Phase 2 on `path.model` (head as built, backbone top unfrozen), one epoch at a time."""
    compile_model(path.model, make_optimizer(1e-2, 1e-4, "constant", epochs, 3, 0), 0.0)
    for epoch in range(epochs):
        path.model.fit(
            path.train(epoch),
            initial_epoch=epoch,
            epochs=epoch + 1,
            verbose=0,
            shuffle=False,
            callbacks=list(callbacks),
        )
    return path.model


class Online:
    def __init__(self, built, inputs, split):
        self.model, self.inputs, self.split = built.model, inputs, split

    def train(self, epoch):  # data epoch OFFSET + e, as the bank draws it
        return self.inputs.dataset(
            self.split,
            "train",
            BATCH,
            augment=AUGMENT,
            shuffle_seed=0,
            epoch=OFFSET + epoch,
            sample_weights=WEIGHTS,
        )


class Banked:
    def __init__(self, model, feeder):
        self.model, self.feeder = model, feeder

    def train(self, epoch):
        return self.feeder.dataset()


def tuned_pair(split, folder, layers, dtype, epochs=3):
    """(online model, bank model, bank) after the same phase 2 on the same draws."""
    inputs = inputs_for(folder)
    online = residual_stand_in(seed=3)
    unfreeze_top(online.backbone, layers)
    fine_tune(Online(online, inputs, split), epochs)

    banked = residual_stand_in(seed=3)
    unfreeze_top(banked.backbone, layers)
    cut, _ = find_cut(banked.backbone, layers)
    _, top = split_backbone(banked.backbone, cut)
    bank = bank_for(banked, split, folder, layers, dtype)
    feeder = ActivationEpochs(
        bank, WEIGHTS, BATCH, activation_shape(cut), len(split.subset("train")), offset=OFFSET
    )
    model = fine_tune(Banked(fine_tune_model(banked, top), feeder), epochs, [feeder])
    assert int(model.optimizer.iterations) == int(online.model.optimizer.iterations)
    return online, banked, bank


@pytest.mark.parametrize("layers", [2, 3])  # at the fine-tune cut, and moved below a residual block
def test_phase_2_on_the_bank_matches_phase_2_online_on_the_same_draws(split, tmp_path, layers):
    online, banked, bank = tuned_pair(split, tmp_path, layers, "float32")
    val = inputs_for(tmp_path).dataset(split, "val", BATCH)
    np.testing.assert_allclose(
        banked.model.predict(val, verbose=0), online.model.predict(val, verbose=0), atol=1e-5
    )
    start = residual_stand_in(seed=3)
    changed = [
        not np.allclose(a, b)
        for a, b in zip(
            banked.backbone.get_layer("conv_c").get_weights(),
            start.backbone.get_layer("conv_c").get_weights(),
        )
    ]
    assert any(changed)  # the real model's top trained ...
    np.testing.assert_array_equal(
        banked.backbone.get_layer("conv_a").get_weights()[0],
        start.backbone.get_layer("conv_a").get_weights()[0],
    )  # ... its bottom did not
    assert bank.stored_epochs() == [OFFSET, OFFSET + 1, OFFSET + 2]


def test_float16_bank_stays_close_to_online(split, tmp_path):
    online, banked, _ = tuned_pair(split, tmp_path, 2, "float16")
    val = inputs_for(tmp_path).dataset(split, "val", BATCH)
    diff = np.abs(banked.model.predict(val, verbose=0) - online.model.predict(val, verbose=0)).max()
    print(f"float16 fine-tune bank: largest val probability difference from online {diff:.2e}")
    assert diff < 5e-3


def test_a_kill_in_the_middle_of_a_bank_epoch_leaves_nothing_half_written(
    split, tmp_path, monkeypatch
):
    bank = bank_for(residual_stand_in(), split, tmp_path)
    bank.epoch(OFFSET)
    savez = np.savez

    def killed(path, **arrays):
        Path(path).write_bytes(b"half an epoch")
        raise KeyboardInterrupt  # the process dies while writing epoch OFFSET + 1

    monkeypatch.setattr(np, "savez", killed)
    with pytest.raises(KeyboardInterrupt):
        bank.epoch(OFFSET + 1)
    monkeypatch.setattr(np, "savez", savez)
    resumed = bank_for(
        residual_stand_in(), split, tmp_path
    )  # the re-run: a new process, a new bank
    assert resumed.stored_epochs() == [OFFSET] and sorted(
        p.name for p in resumed.folder.iterdir()
    ) == ["epoch002.npz"]
    activations, labels = resumed.epoch(OFFSET + 1)
    assert resumed.computed == [OFFSET + 1] and activations.shape == (
        len(labels),
        SIZE - 2,
        SIZE - 2,
        8,
    )
    fresh = bank_for(residual_stand_in(), split, tmp_path / "clean").epoch(OFFSET + 1)[0]
    np.testing.assert_allclose(activations, fresh, atol=1e-6)


def test_two_banks_filling_one_epoch_at_once_leave_one_whole_file(split, tmp_path):
    banks = [bank_for(residual_stand_in(), split, tmp_path) for _ in range(2)]
    banks[0].epoch_images(
        OFFSET
    )  # decodes the image cache first: that cache is per process, not per thread
    results: dict[int, np.ndarray] = {}
    barrier = threading.Barrier(2)

    def fill(i):
        barrier.wait()
        results[i] = banks[i].epoch(OFFSET)[0]

    threads = [threading.Thread(target=fill, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert sorted(results) == [0, 1]
    kept = bank_for(residual_stand_in(), split, tmp_path)
    assert kept.stored_epochs() == [OFFSET] and not [
        p for p in kept.folder.iterdir() if p.name.startswith(".")
    ]
    for i in range(2):
        np.testing.assert_allclose(results[i], kept.epoch(OFFSET)[0], atol=1e-6)


def test_two_threads_writing_one_target_never_share_a_temporary_file(tmp_path):
    """Two banks in one process: each writer renames its own whole file (one name loses one)."""
    from benchmark.io import replace_atomically

    barrier, errors = threading.Barrier(2), []

    def write(text):
        def slow(path):
            Path(path).write_text(text)
            barrier.wait(timeout=10)  # both temporaries exist before either is renamed

        try:
            replace_atomically(tmp_path / "epoch.txt", slow)
        except OSError as err:
            errors.append(err)

    threads = [threading.Thread(target=write, args=(text,)) for text in ("a" * 100, "b" * 100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and (tmp_path / "epoch.txt").read_text() in ("a" * 100, "b" * 100)
    assert [p.name for p in tmp_path.iterdir()] == ["epoch.txt"]
