"""A K-fold run folder without training: the fold files, cell ids, per-fold views and fingerprints,
what a resume refuses, late fusion within one fold, and Slurm arrays whose fold files exist before
submission."""

import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.config.run_config import RunConfig
from benchmark.errors import UsageError
from benchmark.results.tables import build_tables
from benchmark.run.cell_key import CellKey
from benchmark.run.folder import prepare_run, split_file
from benchmark.run.grid import Cell
from benchmark.run.late_fusion import run_late_fusion_cell
from benchmark.run.loop import run_grid
from benchmark.run.records import CellRecord, load_records, predictions_path, write_record
from benchmark.run.split_files import split_fingerprint
from data_pipeline import DataError

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "cli"))
from cli_helpers import make_images  # noqa: E402

TINY = dict(
    models=["simple_cnn"],
    alphas=[0.0, 1.0],
    weights="none",
    image_size=32,
    batch_size=8,
    initial_epochs=1,
    fine_tune_epochs=0,
    profile=False,
    save_models="none",
)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


@pytest.fixture
def data(tmp_path):
    return make_images(tmp_path / "data", per_class=8, size=32)


@pytest.fixture
def fold_run(data, tmp_path):
    return prepare_run(RunConfig(data=str(data), folds=2, **TINY), tmp_path / "run")


def test_a_fold_run_writes_one_split_file_per_fold_and_cells_per_fold(fold_run):
    run_dir = fold_run.run_dir
    assert sorted(p.name for p in (run_dir / "splits").iterdir()) == ["fold0.csv", "fold1.csv"]
    assert not (run_dir / "splits.csv").exists() and not list(run_dir.glob(".splits.*.partial"))
    assert (
        run_dir / "splits"
    ).stat().st_mode & 0o777 == 0o777 & ~_umask()  # colleagues on a shared folder read it
    assert [c.cell_id for c in fold_run.cells] == [
        "simple_cnn__alpha0__seed0__fold0",
        "simple_cnn__alpha0__seed0__fold1",
        "simple_cnn__alpha1__seed0__fold0",
        "simple_cnn__alpha1__seed0__fold1",
    ]
    assert fold_run.split is None and len(fold_run.fold_splits) == 2
    tested = [set(fold_run.for_fold(k).split.subset("test")["path"]) for k in (0, 1)]
    assert not tested[0] & tested[1] and len(tested[0] | tested[1]) == 24
    assert (
        fold_run.for_fold(1).split_fingerprint
        == split_fingerprint(run_dir, 1)
        != split_fingerprint(run_dir, 0)
    )
    assert (
        split_file(run_dir, 1) == run_dir / "splits" / "fold1.csv"
        and split_file(run_dir) == run_dir / "splits.csv"
    )
    assert [c.key for c in fold_run.cells][-1] == CellKey("simple_cnn", 1.0, 0, fold=1)


def test_a_resume_reads_the_same_folds(fold_run):
    again = prepare_run(fold_run.config, fold_run.run_dir)
    assert [f.table.equals(g.table) for f, g in zip(again.fold_splits, fold_run.fold_splits)] == [
        True,
        True,
    ]
    assert again.fold_fingerprints == fold_run.fold_fingerprints


def test_a_folder_is_never_resumed_split_another_way(fold_run, data, tmp_path):
    one_split = RunConfig(data=str(data), **TINY)
    with pytest.raises(UsageError, match="holds 2 fold splits .* add --folds 2 to resume it"):
        prepare_run(one_split, fold_run.run_dir, force=True)
    with pytest.raises(
        UsageError, match="holds fold splits fold0.csv, fold1.csv, not the 3 of --folds 3"
    ):
        prepare_run(RunConfig(data=str(data), folds=3, **TINY), fold_run.run_dir, force=True)
    plain = prepare_run(one_split, tmp_path / "plain")
    assert plain.cells[0].cell_id == "simple_cnn__alpha0__seed0" and plain.fold_splits == []
    with pytest.raises(UsageError, match=r"holds one split .*splits.csv\), not folds"):
        prepare_run(RunConfig(data=str(data), folds=2, **TINY), plain.run_dir, force=True)


def test_a_fold_cell_from_another_split_is_refused_naming_its_fold_file(fold_run):
    cell = fold_run.cells[1]
    write_record(
        fold_run.run_dir,
        CellRecord(
            cell_id=cell.cell_id,
            index=cell.index,
            model=cell.model,
            alpha=cell.alpha,
            seed=cell.seed,
            fold=cell.fold,
            metrics={"val": {"accuracy": 0.5}},
            config=fold_run.config.to_dict(),
            split_fingerprint="0" * 16,
        ),
    )
    with pytest.raises(UsageError, match=r"simple_cnn__alpha0__seed0__fold1.*splits/fold1.csv"):
        run_grid(fold_run)
    with pytest.raises(UsageError, match="splits/fold1.csv"):
        build_tables(fold_run.run_dir)


def test_each_fold_gets_its_own_banks_shared_by_its_alphas(data, tmp_path):
    """A bank stores one training split's images: the folds' split files key two banks of each
    kind, and the second alpha of a fold reads its fold's banks instead of computing new ones."""
    config = RunConfig(
        data=str(data),
        folds=2,
        **{
            **TINY,
            "models": ["efficientnet_lite0"],
            "weights": "imagenet",
            "fine_tune_epochs": 1,
        },
    )
    ctx = prepare_run(config, tmp_path / "run")
    assert run_grid(ctx, quiet=True) == 0
    records = load_records(ctx.run_dir)
    assert len(records) == 4
    assert {(r.head_features, r.fine_tune_features) for r in records} == {("bank", "bank")}
    computed = {
        (r.alpha, r.fold): (
            r.timings["feature_bank_epochs_computed"],
            r.timings["fine_tune_bank_epochs_computed"],
        )
        for r in records
    }
    assert computed == {(0.0, 0): (1, 1), (0.0, 1): (1, 1), (1.0, 0): (0, 0), (1.0, 1): (0, 0)}
    for kind in ("features", "fine_tune_bank"):
        banks = sorted(p for p in (ctx.run_dir / kind).iterdir() if p.is_dir())
        assert len(banks) == 2, banks  # one per fold, whatever the alpha
        assert banks[0].name != banks[1].name
        for bank in banks:
            assert len(list(bank.glob("epoch*"))) == 1  # one data epoch, written once


def test_presplit_data_and_split_file_are_refused_with_folds(tmp_path):
    make_images(tmp_path / "pre" / "train", per_class=4)
    make_images(
        tmp_path / "pre" / "val", per_class=4, size=36
    )  # other pixels: no leak between the two
    with pytest.raises(DataError, match="--folds 2 re-partitions the images"):
        prepare_run(RunConfig(data=str(tmp_path / "pre"), folds=2, **TINY), tmp_path / "run")
    assert not (tmp_path / "run" / "splits").exists()
    with pytest.raises(UsageError, match="--split-file and --folds exclude each other"):
        RunConfig(split_file=str(tmp_path / "splits.csv"), folds=2, **TINY)


def _fake_predictions(ctx, cell_id: str, rng) -> None:
    """Saved probabilities of a component cell for its fold's val and test images."""
    frames = []
    for part in ("val", "test"):
        rows = ctx.split.subset(part)
        probs = rng.dirichlet(np.ones(len(ctx.split.class_names)), size=len(rows))
        frame = pd.DataFrame(
            {
                "split": part,
                "path": rows["path"],
                "true": ctx.split.label_indices(part),
                "pred": probs.argmax(1),
            }
        )
        for i, name in enumerate(ctx.split.class_names):
            frame[f"prob_{name}"] = probs[:, i]
        frames.append(frame)
    path = predictions_path(ctx.run_dir, cell_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.concat(frames).to_csv(path, index=False)


def test_late_fusion_combines_the_components_of_the_same_fold(data, tmp_path):
    config = RunConfig(
        data=str(data), folds=2, **{**TINY, "models": ["late_fusion_mobilenet"], "alphas": [0.0]}
    )
    ctx = prepare_run(config, tmp_path / "run")
    assert [c.cell_id for c in ctx.cells][-2:] == [
        "late_fusion_mobilenet__alpha0__seed0__fold0",
        "late_fusion_mobilenet__alpha0__seed0__fold1",
    ]
    view, rng = ctx.for_fold(1), np.random.default_rng(0)
    for component in ("mobilenet", "text_bert"):
        _fake_predictions(view, Cell(-1, component, 0.0, 0, 1).cell_id, rng)
    fused = next(c for c in ctx.cells if c.model == "late_fusion_mobilenet" and c.fold == 1)
    record = run_late_fusion_cell(view, fused)
    assert record.fold == 1 and record.cell_id.endswith("__fold1")
    assert record.split_fingerprint == ctx.fold_fingerprints[1]
    scored = pd.read_csv(tmp_path / "run" / record.predictions_file)
    assert set(scored.loc[scored["split"] == "test", "path"]) == set(
        view.split.subset("test")["path"]
    )
    with pytest.raises(
        RuntimeError, match="component cell mobilenet__alpha0__seed0__fold0 has no predictions"
    ):
        run_late_fusion_cell(
            ctx.for_fold(0), next(c for c in ctx.cells if c.model == "late_fusion_mobilenet")
        )


def test_slurm_writes_the_fold_files_before_the_array_and_indexes_every_fold_cell(
    data, tmp_path, capsys
):
    from benchmark.run.slurm import slurm_command
    from benchmark.run.slurm_options import SlurmOptions

    run_dir = tmp_path / "run"
    assert slurm_command(RunConfig(data=str(data), folds=3, **TINY), run_dir, SlurmOptions()) == 0
    assert sorted(p.name for p in (run_dir / "splits").iterdir()) == [
        "fold0.csv",
        "fold1.csv",
        "fold2.csv",
    ]
    script = (run_dir / "slurm" / "array.sbatch").read_text()
    assert "--array=0-5" in script and '--cell "$SLURM_ARRAY_TASK_ID"' in script
    assert "6 cells, 6 to run" in capsys.readouterr().out
    task = prepare_run(
        RunConfig(data=str(data), folds=3, **TINY), run_dir
    )  # what each array task does: read only
    assert task.cells[4].cell_id == "simple_cnn__alpha1__seed0__fold1"
    assert task.fold_fingerprints == [split_fingerprint(run_dir, k) for k in range(3)]


def test_explain_reads_the_true_labels_from_a_fold_file(fold_run):
    from types import SimpleNamespace

    from benchmark.inference.explain import split_labels

    labels = split_labels(
        SimpleNamespace(path=fold_run.run_dir / "saved_models" / "simple_cnn.keras")
    )
    assert len(labels) == 24 and set(labels.values()) == {"glass", "paper", "plastic"}
