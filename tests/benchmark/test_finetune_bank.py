"""The fine-tune bank: where a backbone may be cut, that phase 2 on it equals phase 2 online, and
that it is safe to share."""

import threading
from pathlib import Path

import keras
import numpy as np
import pytest
from stand_ins import SIZE, colour_split

from benchmark.config.run_config import RunConfig
from benchmark.errors import UsageError
from benchmark.run.cell import CellInputs
from benchmark.run.phase2 import plan_phase2
from benchmark.training.feature_bank import FeatureBank
from benchmark.training.finetune_bank import (
    ActivationEpochs,
    activation_shape,
    bottom_randomness,
    find_cut,
    fine_tune_model,
    split_backbone,
)
from benchmark.training.recipe import RecipeSettings, compile_model, make_optimizer, unfreeze_top
from data_pipeline import AugmentConfig
from models import BuiltModel, HeadConfig, attach_head

AUGMENT = AugmentConfig(strength=1.0)
BATCH = 6
OFFSET = 2  # phase 1's epoch budget: phase 2's epoch e is data epoch OFFSET + e
WEIGHTS = np.array([1.0, 2.0, 0.5], np.float32)


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    return colour_split(tmp_path_factory.mktemp("colours"))


def residual_stand_in(seed: int = 0, dropout_below: bool = False) -> BuiltModel:
    """A tiny "pretrained" backbone with a residual block, under the shared head (with dropout).

    layers: 0 input, 1 rescale, 2 conv_a, 3 bn_a, 4 conv_b, 5 bn_b, 6 add (bn_a + bn_b),
    7 conv_c, 8 bn_c
    """
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1 / 255, name="rescale")(inputs)
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv_a")(x)
    if dropout_below:
        x = keras.layers.Dropout(0.2, name="drop_a")(x)
    shortcut = x = keras.layers.BatchNormalization(name="bn_a")(x)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv_b")(x)
    x = keras.layers.BatchNormalization(name="bn_b")(x)
    x = keras.layers.Add(name="add")([x, shortcut])
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv_c")(x)
    x = keras.layers.BatchNormalization(name="bn_c")(x)
    backbone = keras.Model(inputs, x, name="residual_stand_in")
    for layer in backbone.layers:  # "pretrained" BatchNorm statistics, away from the identity
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(np.full(8, 0.1, np.float32))
            layer.moving_variance.assign(np.full(8, 2.0, np.float32))
    model = attach_head(
        backbone, 3, HeadConfig(units=(8,), dropout=0.2), name="residual_classifier"
    )
    return BuiltModel(
        model=model, backbone=backbone, entry=None, weights="stand-in pretrained weights"
    )


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
            "block11_expand_conv",
            0,
            "",
        ),  # the first layer of stage 6: clean as it is
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


def test_a_cut_with_no_clean_boundary_below_goes_online_with_the_reason(tmp_path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(3, 3, padding="same", name="conv_a")(inputs)
    x = keras.layers.Conv2D(3, 3, padding="same", name="conv_b")(x)
    x = keras.layers.Add(name="add")([x, inputs])  # the raw image crosses every cut
    backbone = keras.Model(inputs, keras.layers.BatchNormalization(name="bn")(x))
    built = BuiltModel(
        model=attach_head(backbone, 3, HeadConfig(units=(4,)), name="m"),
        backbone=backbone,
        entry=None,
        weights="w",
    )
    cut, reason = find_cut(backbone, 2)
    assert cut is None and "no clean cut at or below 'add'" in reason and "conv_b" in reason
    settings = RecipeSettings(fine_tune_layers=2, fine_tune_epochs=2)
    plan = plan_phase2(RunConfig(), built, settings, num_train=18, num_val=9, folder=tmp_path)
    assert (plan.mode, plan.reason) == ("online", reason)
    with pytest.raises(UsageError, match="--fine-tune-features bank: no clean cut"):
        plan_phase2(
            RunConfig(fine_tune_features="bank"),
            built,
            settings,
            num_train=18,
            num_val=9,
            folder=tmp_path,
        )


def test_a_random_layer_below_the_cut_sends_phase_2_online(tmp_path):
    built = residual_stand_in(dropout_below=True)
    cut, _ = find_cut(built.backbone, 2)
    assert bottom_randomness(built.backbone, cut) == "drop_a"
    plan = plan_phase2(
        RunConfig(),
        built,
        RecipeSettings(fine_tune_layers=2),
        num_train=18,
        num_val=9,
        folder=tmp_path,
    )
    assert plan.mode == "online" and "'drop_a'" in plan.reason
    plain = plan_phase2(
        RunConfig(),
        residual_stand_in(),
        RecipeSettings(fine_tune_layers=2),
        num_train=18,
        num_val=9,
        folder=tmp_path,
    )
    assert plain.mode == "bank" and plain.cut.layer == "conv_c"


def test_over_the_size_limit_or_asked_online_runs_online_and_no_phase_2_is_none(tmp_path):
    built, settings = residual_stand_in(), RecipeSettings(fine_tune_layers=2, fine_tune_epochs=10)
    # 10 epochs x 18 images + 9 val, 12x12x8 float16 each: 0.35 MiB
    small = plan_phase2(
        RunConfig(fine_tune_bank_limit=0.1),
        built,
        settings,
        num_train=18,
        num_val=9,
        folder=tmp_path,
    )
    assert small.mode == "online" and "over --fine-tune-bank-limit 0.1" in small.reason
    asked = plan_phase2(
        RunConfig(fine_tune_features="online"),
        built,
        settings,
        num_train=18,
        num_val=9,
        folder=tmp_path,
    )
    assert asked.mode == "online"
    none = plan_phase2(
        RunConfig(),
        built,
        RecipeSettings(fine_tune_layers=0),
        num_train=18,
        num_val=9,
        folder=tmp_path,
    )
    assert none.mode == "none"


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


def test_old_run_folders_resume_and_old_records_read():
    """Folders and records from before the fine-tune bank: their phase 2 ran online."""
    import json

    from benchmark.config.run_config import differing_keys
    from benchmark.run.records import CellRecord

    new_keys = ("fine_tune_features", "fine_tune_bank_limit")
    old = {k: v for k, v in RunConfig().to_dict().items() if k not in new_keys}
    assert differing_keys(old, RunConfig().to_dict()) == []
    changed = RunConfig(fine_tune_features="online").to_dict()
    assert differing_keys(old, changed) == ["fine_tune_features"]
    saved = Path(__file__).parent / "data" / "record_60ee30d_ok.json"
    assert CellRecord.from_json(json.loads(saved.read_text())).fine_tune_features == ""


@pytest.mark.slow
def test_an_alpha_sweep_fine_tunes_both_cells_on_one_bank(tmp_path):
    """Two alpha cells of a "pretrained" MobileNetV3Small (random weights from a file): one bank."""
    from benchmark.config.run_config import resolve_config
    from benchmark.run.folder import prepare_run
    from benchmark.run.loop import run_grid
    from benchmark.run.records import load_records
    from models import BuildSpec, build_model

    weights = tmp_path / "backbone.weights.h5"
    spec = BuildSpec(num_classes=2, image_size=32, weights="none")
    build_model("mobilenet_v3_small", spec).backbone.save_weights(weights)
    data = tmp_path / "data"
    data.mkdir()
    colour_split(data)
    config = resolve_config(None, None, {
        "models": ["mobilenet_v3_small"], "alphas": [0.0, 1.0], "data": str(data),
        "weights": str(weights), "image_size": 32, "batch_size": 8, "initial_epochs": 1,
        "fine_tune_epochs": 2, "patience": 5, "save_models": "none", "profile": False,
    })
    assert run_grid(prepare_run(config, tmp_path / "run"), quiet=True) == 0
    records = sorted(load_records(tmp_path / "run"), key=lambda r: r.alpha)
    assert [r.fine_tune_features for r in records] == ["bank", "bank"]
    assert [r.timings["fine_tune_bank_epochs_computed"] for r in records] == [2, 0]
    assert [r.phases[1]["epochs"] for r in records] == [2, 2]
    banks = list((tmp_path / "run" / "fine_tune_bank").iterdir())
    names = sorted(p.name for p in banks[0].iterdir())
    assert len(banks) == 1 and names == ["epoch001.npz", "epoch002.npz", "val.npy"]


def test_a_resumed_cell_keeps_the_phase_2_path_its_backups_were_written_on(tmp_path):
    from benchmark.run.phase2 import phase2_on_resume, record_phase2_path

    fresh = tmp_path / "fresh"
    assert phase2_on_resume(fresh, "bank") == ("bank", "")  # nothing to resume
    old = tmp_path / "old"  # a folder from before the bank, killed in phase 2: backups, no path file
    (old / "fine_tune").mkdir(parents=True)
    mode, note = phase2_on_resume(old, "bank")
    assert mode == "online" and "resumes online" in note
    banked = tmp_path / "banked"  # killed in phase 2 on the bank, resumed with the bank ruled out
    record_phase2_path(banked, "bank")
    (banked / "fine_tune").mkdir()
    (banked / "head.done.json").write_text("{}")
    assert phase2_on_resume(banked, "bank") == ("bank", "")
    mode, note = phase2_on_resume(banked, "online")
    assert mode == "online" and "restarts online" in note
    assert sorted(p.name for p in banked.iterdir()) == ["fine_tune_features.txt", "head.done.json"]
