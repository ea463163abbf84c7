"""The augmented feature bank: what it holds, that training on it equals training online, and that
it is safe to share."""

import dataclasses
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from stand_ins import SIZE, colour_split, stand_in_pretrained

from benchmark.config.run_config import RunConfig
from benchmark.errors import UsageError
from benchmark.plan import resolve_plan
from benchmark.run.cell import CellInputs
from benchmark.run.phase1 import phase1_mode
from benchmark.training.feature_bank import BankEpochs, FeatureBank
from benchmark.training.head_features import feature_extractor, head_model
from benchmark.training.optimizer import compile_model, make_optimizer
from benchmark.training.recipe import RecipeSettings
from data_pipeline import AugmentConfig

AUGMENT = AugmentConfig(strength=1.0)
BATCH = 6
PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    return colour_split(tmp_path_factory.mktemp("colours"))


def bank_for(built, split, folder: Path, dtype="float32") -> FeatureBank:
    inputs = CellInputs(
        image_size=SIZE, preprocess=None, modality="image", cache_dir=folder / "cache"
    )
    return FeatureBank(
        folder / "bank",
        feature_extractor(built),
        lambda e: inputs.dataset(split, "train", BATCH, augment=AUGMENT, shuffle_seed=0, epoch=e),
        dtype=dtype,
    )


def test_epoch_e_holds_the_pooled_features_of_epoch_e_augmented_images(split, tmp_path):
    built = stand_in_pretrained()
    bank = bank_for(built, split, tmp_path)
    features = {e: bank.epoch(e)[0] for e in (0, 1)}
    assert not np.allclose(features[0], features[1])  # other draws, other order: other features
    images = np.concatenate([np.asarray(x) for x, _ in bank.epoch_images(1)])
    expected = np.asarray(built.backbone(images, training=False)).mean(axis=(1, 2))
    np.testing.assert_allclose(features[1], expected, rtol=1e-4, atol=1e-5)
    assert sorted(bank.computed) == [0, 1] and bank.stored_epochs() == [0, 1]
    again = bank_for(built, split, tmp_path)  # a later cell (or process) reads, never recomputes
    np.testing.assert_array_equal(again.epoch(1)[0], features[1])
    assert again.computed == []


def test_the_head_trained_on_the_bank_matches_the_head_trained_online_on_the_same_draws(
    split, tmp_path
):
    """Same seed, augmentation on: phase 1 from the bank ends where phase 1 on epoch e's images
    does."""
    epochs, weights = 4, np.array([1.0, 2.0, 0.5], np.float32)
    inputs = CellInputs(
        image_size=SIZE, preprocess=None, modality="image", cache_dir=tmp_path / "cache"
    )
    val = inputs.dataset(split, "val", BATCH)
    settings = RecipeSettings(
        initial_epochs=epochs, fine_tune_epochs=0, initial_lr=1e-2, patience=10
    )

    online = stand_in_pretrained(seed=3)
    online.backbone.trainable = False
    compile_model(
        online.model, make_optimizer(1e-2, settings.weight_decay, "constant", epochs, 3, 0), 0.0
    )
    for epoch in range(epochs):  # epoch e's images, exactly as the bank draws them
        train = inputs.dataset(
            split,
            "train",
            BATCH,
            augment=AUGMENT,
            shuffle_seed=0,
            epoch=epoch,
            sample_weights=weights,
        )
        online.model.fit(train, initial_epoch=epoch, epochs=epoch + 1, verbose=0, shuffle=False)

    banked = stand_in_pretrained(seed=3)
    bank = bank_for(banked, split, tmp_path)
    feeder = BankEpochs(bank, weights, BATCH, feature_dim=8, num_images=len(split.subset("train")))
    banked.backbone.trainable = False
    head = head_model(banked)  # shares the full model's head layers
    compile_model(head, make_optimizer(1e-2, settings.weight_decay, "constant", epochs, 3, 0), 0.0)
    for epoch in range(epochs):
        head.fit(
            feeder.dataset(),
            initial_epoch=epoch,
            epochs=epoch + 1,
            verbose=0,
            shuffle=False,
            callbacks=[feeder],
        )
    assert int(head.optimizer.iterations) == int(
        online.model.optimizer.iterations
    )  # same steps: same AdamW schedule
    np.testing.assert_allclose(
        banked.model.predict(val, verbose=0), online.model.predict(val, verbose=0), atol=1e-5
    )
    assert bank.stored_epochs() == list(range(epochs))


def test_a_killed_writer_leaves_no_epoch_that_can_be_read(split, tmp_path, monkeypatch):
    built = stand_in_pretrained()
    bank = bank_for(built, split, tmp_path)

    def killed(path, **arrays):
        Path(path).write_bytes(b"half an epoch")
        raise KeyboardInterrupt  # the process dies while writing

    monkeypatch.setattr(np, "savez", killed)
    with pytest.raises(KeyboardInterrupt):
        bank.epoch(0)
    monkeypatch.undo()
    assert bank.stored_epochs() == [] and not list(bank.folder.iterdir())
    features, labels = bank.epoch(0)  # the re-run computes the epoch whole
    assert features.shape == (len(labels), 8) and bank.stored_epochs() == [0]


@pytest.mark.parametrize("damage", ["truncated", "garbled"])
def test_a_damaged_epoch_file_is_named_once_and_computed_again(split, tmp_path, capsys, damage):
    """Issue 30: a file cut short after it was written (a full disk, a copy) failed every resume
    with a BadZipFile that named no file, and was never rebuilt."""
    built = stand_in_pretrained()
    features, labels = bank_for(built, split, tmp_path).epoch(0)
    path = bank_for(built, split, tmp_path).path(0)
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    else:  # the same length, the arrays' bytes overwritten: the zip's CRC no longer matches
        path.write_bytes(data[:100] + bytes(len(data) - 200) + data[-100:])
    again = bank_for(built, split, tmp_path)
    rebuilt, rebuilt_labels = again.epoch(0)
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"warning: feature-bank file {path} is damaged (") and "again" in line
    np.testing.assert_array_equal(rebuilt, features)
    np.testing.assert_array_equal(rebuilt_labels, labels)
    assert again.computed == [0]
    assert bank_for(built, split, tmp_path).epoch(0)[0].shape == features.shape
    assert capsys.readouterr().err == ""  # the rebuilt file reads cleanly


def test_damaged_stored_features_are_named_once_and_computed_again(split, tmp_path, capsys):
    from benchmark.training.head_features import cached_features

    built = stand_in_pretrained()
    inputs = CellInputs(
        image_size=SIZE, preprocess=None, modality="image", cache_dir=tmp_path / "cache"
    )
    val, rows = inputs.dataset(split, "val", BATCH), len(split.subset("val"))
    cache_file = tmp_path / "features" / "val.npy"
    cache_file.parent.mkdir()
    features = cached_features(built, val, cache_file, rows=rows)
    cache_file.write_bytes(cache_file.read_bytes()[:-40])
    np.testing.assert_array_equal(cached_features(built, val, cache_file, rows=rows), features)
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"warning: stored features {cache_file} are damaged")
    np.testing.assert_array_equal(np.load(cache_file), features)


def test_float16_bank_keeps_the_features_to_three_decimals(split, tmp_path):
    built = stand_in_pretrained()
    full = bank_for(built, split, tmp_path / "f32").epoch(0)[0]
    half = bank_for(built, split, tmp_path / "f16", dtype="float16").epoch(0)[0]
    assert half.dtype == np.float16
    np.testing.assert_allclose(half.astype(np.float32), full, rtol=2e-3, atol=1e-3)


def test_two_processes_filling_the_same_epoch_at_once_leave_one_whole_file(split, tmp_path):
    script = textwrap.dedent(f"""
        import sys
        sys.path[:0] = [{str(PROJECT)!r}, {str(PROJECT / "tests" / "benchmark")!r}]
        from pathlib import Path
        import numpy as np
        from stand_ins import stand_in_pretrained
        from test_feature_bank import bank_for
        from data_pipeline import read_split_file
        split = read_split_file(Path(sys.argv[1]))
        features, labels = bank_for(stand_in_pretrained(), split, Path(sys.argv[2])).epoch(0)
        np.save(sys.argv[3], features)
    """)
    from data_pipeline import write_split_file

    write_split_file(split, tmp_path / "splits.csv")
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                script,
                str(tmp_path / "splits.csv"),
                str(tmp_path / "run"),
                str(tmp_path / f"out{i}.npy"),
            ]
        )
        for i in range(2)
    ]
    assert [w.wait(timeout=300) for w in workers] == [0, 0]
    stored = bank_for(stand_in_pretrained(), split, tmp_path / "run")
    assert stored.stored_epochs() == [0] and not [
        p for p in stored.folder.iterdir() if p.name.startswith(".")
    ]
    for i in range(2):  # each process got a whole epoch, the same as the one kept
        np.testing.assert_allclose(np.load(tmp_path / f"out{i}.npy"), stored.epoch(0)[0], atol=1e-6)


def test_cached_on_a_model_that_cannot_store_features_is_refused_in_one_line(split):
    with pytest.raises(
        UsageError, match=r"--head-features cached: mobilenet_v2 trains from scratch here"
    ):
        resolve_plan(RunConfig(head_features="cached", weights="none"), "mobilenet_v2")
    with pytest.raises(UsageError, match=r"--head-features cached: simple_cnn trains from scratch"):
        resolve_plan(RunConfig(head_features="cached"), "simple_cnn")
    for name in ("mobilenet_v2", "late_fusion_convnext_small"):
        resolve_plan(RunConfig(head_features="cached"), name)
    resolve_plan(RunConfig(head_features="auto", weights="none"), "simple_cnn")  # online there


def test_auto_banks_with_augmentation_caches_without_and_goes_online_where_it_must():
    built = stand_in_pretrained()
    assert phase1_mode(RunConfig(), built, AUGMENT) == "bank"
    assert phase1_mode(RunConfig(), built, None) == "cached"
    assert phase1_mode(RunConfig(head_features="online"), built, AUGMENT) == "online"
    scratch = dataclasses.replace(built, backbone=None)  # nothing frozen to store features of
    assert phase1_mode(RunConfig(), scratch, AUGMENT) == "online"
    with pytest.raises(UsageError, match="--head-features cached"):
        phase1_mode(RunConfig(head_features="cached"), scratch, AUGMENT)


@pytest.mark.slow
def test_an_alpha_sweep_through_the_runner_fills_the_bank_once_and_says_so(tmp_path):
    """Two alpha cells of a "pretrained" MobileNetV3 (a random backbone saved as a weights file):
    one bank."""
    from benchmark.config.run_config import resolve_config
    from benchmark.run.folder import prepare_run
    from benchmark.run.loop import run_grid
    from benchmark.run.records import load_records
    from models import BuildSpec, build_model

    weights = tmp_path / "backbone.weights.h5"
    build_model(
        "mobilenet_v3_small", BuildSpec(num_classes=2, image_size=32, weights="none")
    ).backbone.save_weights(weights)
    data = tmp_path / "data"
    data.mkdir()
    colour_split(data)
    config = resolve_config(
        None,
        None,
        {
            "models": ["mobilenet_v3_small"],
            "alphas": [0.0, 1.0],
            "data": str(data),
            "weights": str(weights),
            "image_size": 32,
            "batch_size": 8,
            "initial_epochs": 2,
            "fine_tune_epochs": 1,
            "patience": 5,
            "save_models": "none",
            "profile": False,
        },
    )
    assert run_grid(prepare_run(config, tmp_path / "run"), quiet=True) == 0
    records = sorted(load_records(tmp_path / "run"), key=lambda r: r.alpha)
    assert [r.head_features for r in records] == ["bank", "bank"]
    assert [r.timings["feature_bank_epochs_computed"] for r in records] == [
        2,
        0,
    ]  # the second cell only reads
    banks = list((tmp_path / "run" / "features").glob("*_bank-*"))
    assert len(banks) == 1 and sorted(p.name for p in banks[0].iterdir()) == [
        "epoch000.npz",
        "epoch001.npz",
    ]
    assert all(isinstance(r.timings["first_epoch_extra_seconds"][0], float) for r in records)


def test_a_cell_killed_inside_a_bank_epoch_resumes_bit_identical_and_quietly(split, tmp_path):
    """Issue 30: the resume warned 'Skipping variable loading for optimizer' and, with dropout,
    ended apart from an uninterrupted cell (its dropout masks restarted from the first epoch's)."""
    import warnings

    from benchmark.training.checkpoint import PhaseCheckpoint
    from benchmark.training.head_features import feature_dataset
    from benchmark.training.recipe import run_phase
    from models import HeadConfig, attach_head

    epochs, weights = 6, np.array([1.0, 2.0, 0.5], np.float32)
    inputs = CellInputs(
        image_size=SIZE, preprocess=None, modality="image", cache_dir=tmp_path / "cache"
    )
    val = inputs.dataset(split, "val", BATCH)
    settings = RecipeSettings(
        initial_epochs=epochs,
        fine_tune_epochs=0,
        initial_lr=1e-2,
        patience=100,
        lr_schedule="cosine",
    )

    def head_phase(work: Path, bank_folder: Path, kill_in_epoch: int | None = None) -> list:
        built = stand_in_pretrained(seed=3)  # a fresh process: same seed, new objects
        model = attach_head(built.backbone, 3, HeadConfig(units=(8,), dropout=0.3), name="dropping")
        built = dataclasses.replace(built, model=model)
        built.backbone.trainable = False

        def epoch_images(epoch):
            if epoch == kill_in_epoch:  # killed while the bank computes this epoch's features
                raise KeyboardInterrupt
            return inputs.dataset(
                split, "train", BATCH, augment=AUGMENT, shuffle_seed=0, epoch=epoch
            )

        extractor = feature_extractor(built)
        bank = FeatureBank(bank_folder, extractor, epoch_images, dtype="float32")
        feeder = BankEpochs(bank, weights, BATCH, 8, len(split.subset("train")))
        features = np.asarray(extractor.predict(val.map(lambda x, y: x), verbose=0))
        val_features = feature_dataset(features, split.label_indices("val"), 3, BATCH)
        head_only = head_model(built)
        optimizer = make_optimizer(1e-2, settings.weight_decay, "cosine", epochs, feeder.steps, 1)
        run_phase(
            "head",
            head_only,
            feeder.dataset(),
            val_features,
            epochs,
            optimizer,
            settings,
            [feeder],
            0,
            PhaseCheckpoint(work),
        )
        return [np.asarray(w) for w in head_only.weights]

    uninterrupted = head_phase(tmp_path / "work_full", tmp_path / "bank_full")
    with pytest.raises(KeyboardInterrupt):
        head_phase(tmp_path / "work", tmp_path / "bank", kill_in_epoch=3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resumed = head_phase(tmp_path / "work", tmp_path / "bank")
    messages = [str(w.message) for w in caught]
    assert not [m for m in messages if "optimizer" in m], messages
    for before, after in zip(uninterrupted, resumed):
        np.testing.assert_array_equal(after, before)
