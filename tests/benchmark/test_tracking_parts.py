"""The tracking parts that need no training: the epoch timeline, run-id claims, URIs and config
keys."""

import json
import socket
import time
from pathlib import Path

import pytest

from benchmark.config.config_diff import differing_keys
from benchmark.config.run_config import RunConfig
from benchmark.errors import UsageError
from benchmark.tracking.callbacks import EpochClock
from benchmark.tracking.store import claim_id, flat_params, param_value, read_ids, tracking_uri


def test_the_clock_puts_phase_two_after_phase_one_also_when_a_resume_skips_phase_one(tmp_path):
    fresh = EpochClock()  # no backups (a tune trial): counts earlier fits
    fresh.begin_fit()
    assert [fresh.step(e) for e in range(3)] == [0, 1, 2] and fresh.phase == 0
    fresh.begin_fit()
    assert [fresh.step(e) for e in range(2)] == [3, 4] and fresh.phase == 1

    backups = tmp_path / "work" / "cell"
    backups.mkdir(parents=True)
    (backups / "head.done.json").write_text(json.dumps({"name": "head", "epochs": 4}))
    resumed = EpochClock(
        backups
    )  # a re-run: phase 1 is reloaded, not fitted; phase 2 resumes at its epoch 2
    resumed.begin_fit()
    assert resumed.phase == 1 and resumed.offset == 4 and resumed.step(2) == 6


def test_concurrent_creators_of_the_parent_run_agree_on_one_id(tmp_path):
    id_file = tmp_path / "tracking" / "grid.json"
    assert claim_id(id_file, "http://a", "first") == "first"
    assert claim_id(id_file, "http://a", "second") == "first"  # the loser takes the winner's id
    assert claim_id(id_file, "sqlite:///b.db", "other") == "other"  # another store keeps its own id
    assert (
        claim_id(id_file, "http://a", "fresh", stale="first") == "fresh"
    )  # the stored run was deleted
    assert read_ids(id_file) == {"http://a": "fresh", "sqlite:///b.db": "other"}
    assert not [p for p in id_file.parent.iterdir() if p.name.startswith(".")]


def test_tracking_uris_and_params(tmp_path):
    run_dir = Path("/tmp/some/run")
    # Issue 30: the run folder's own store is SQLite (MLflow 3 keeps folder stores in maintenance)
    assert tracking_uri(True, run_dir) == "sqlite:////tmp/some/run/mlflow.db"
    assert tracking_uri("local", run_dir) == "sqlite:////tmp/some/run/mlflow.db"
    (tmp_path / "mlruns").mkdir()  # a folder that logged to the folder store before: resumes stay
    assert tracking_uri(True, tmp_path) == (tmp_path / "mlruns").resolve().as_uri()
    assert tracking_uri("http://host:5000", run_dir) == "http://host:5000"
    assert tracking_uri("sqlite:///x.db", run_dir) == "sqlite:///x.db"
    assert tracking_uri("/srv/mlruns", run_dir) == "file:///srv/mlruns"
    assert flat_params({"a": 1, "simple_cnn": {"filters": [8, 16]}}) == {
        "a": 1,
        "simple_cnn.filters": [8, 16],
    }
    assert param_value([0.0, 0.5]) == "0.0,0.5" and param_value(None) == "None"


CONCURRENT_LOGGER = """
import sys, time
from pathlib import Path
from benchmark.tracking.store import MlflowStore
uri, go, ids, name = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
import mlflow.tracking  # loaded before the start signal, so both open the store at once
while not go.exists():
    time.sleep(0.002)
store = MlflowStore(uri)
assert store.connect()
experiment = store.guard("experiment", store.experiment_id, "shared")
run_id, _ = store.guard("run", store.open_run, experiment, ids / f"{name}.json", name=name, tags={},
                        params={"who": name})
for step in range(30):
    store.guard("epoch", store.log, run_id, metrics={"loss": 1.0 / (step + 1)}, step=step)
store.guard("close", store.close, run_id)
print("ok" if store.enabled else "tracking off")
"""


def test_two_processes_log_at_once_to_one_new_sqlite_store(tmp_path):
    """Slurm array tasks open the same SQLite file together; creating its schema on first use must
    happen once (under a lock), and every run and epoch of both must arrive."""
    pytest.importorskip("mlflow")
    pytest.importorskip("sqlalchemy")
    import subprocess
    import sys

    from mlflow.tracking import MlflowClient

    uri = tracking_uri(True, tmp_path / "run")
    assert uri == f"sqlite:///{(tmp_path / 'run' / 'mlflow.db').resolve()}"
    go = tmp_path / "go"
    env = {**__import__("os").environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    command = [sys.executable, "-c", CONCURRENT_LOGGER, uri, str(go), str(tmp_path / "ids")]
    pipes = dict(stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    tasks = [
        subprocess.Popen([*command, f"task{k}"], cwd=tmp_path, env=env, **pipes) for k in range(2)
    ]
    time.sleep(8)  # both have imported MLflow and wait for the signal
    go.touch()
    outputs = [task.communicate(timeout=240) for task in tasks]
    for task, (out, err) in zip(tasks, outputs):
        assert task.returncode == 0 and out.strip() == "ok" and "warning" not in err, err
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("shared")
    assert experiment.artifact_location == (tmp_path / "run" / "mlartifacts").resolve().as_uri()
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.data.params["who"] for r in runs) == ["task0", "task1"]
    for run in runs:
        assert run.info.status == "FINISHED"
        history = client.get_metric_history(run.info.run_id, "loss")
        assert sorted(m.step for m in history) == list(range(30))
    assert not (tmp_path / "mlruns").exists()  # nothing in the directory the tasks ran in


def test_tracking_keys_are_output_only_and_checked():
    saved = RunConfig(models=["simple_cnn"]).to_dict()
    changed = RunConfig(
        models=["simple_cnn"], mlflow="http://host:5000", mlflow_experiment="x", tensorboard=True
    )
    assert (
        differing_keys(saved, changed.to_dict()) == []
    )  # a resume may turn tracking on or move it
    with pytest.raises(UsageError, match="--mlflow"):
        RunConfig(models=["simple_cnn"], mlflow=3)


def test_tune_logs_each_trial_as_a_child_run_with_its_values_and_curves(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    import numpy as np
    import yaml
    from mlflow.tracking import MlflowClient
    from PIL import Image

    from benchmark.tune.search import TuneOptions, tune_command

    rng = np.random.default_rng(0)
    for k, name in enumerate(("glass", "paper", "plastic")):
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in range(6):
            pixels = rng.integers(0, 70, (32, 32, 3)) + np.array(
                [170 if c == k else 30 for c in range(3)]
            )
            Image.fromarray(pixels.clip(0, 255).astype("uint8")).save(
                tmp_path / "data" / name / f"{name}_{i}.png"
            )
    (tmp_path / "space.yaml").write_text(
        yaml.safe_dump({"initial_lr": {"type": "float", "min": 1e-3, "max": 1e-2}})
    )
    config = RunConfig(
        models=["simple_cnn"],
        alphas=[0.0],
        data=str(tmp_path / "data"),
        weights="none",
        image_size=32,
        batch_size=8,
        initial_epochs=2,
        fine_tune_epochs=0,
        augment=False,
        mlflow=True,
        simple_cnn={"blocks": 1, "base_filters": 4, "dense_units": 0},
    )
    options = TuneOptions(model="simple_cnn", max_trials=2, space=str(tmp_path / "space.yaml"))
    assert tune_command(config, options, str(tmp_path / "search"), force=False) == 0

    client = MlflowClient(tracking_uri(True, tmp_path / "search"))  # the folder's SQLite store
    runs = client.search_runs([client.get_experiment_by_name("search").experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert parent.data.params["tune.model"] == "simple_cnn" and parent.info.status == "FINISHED"
    assert len(trials) == 2 and all(r.info.status == "FINISHED" for r in trials)
    for run in trials:
        assert (
            1e-3 <= float(run.data.params["initial_lr"]) <= 1e-2 and "trial_id" in run.data.params
        )
        assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "val_loss")) == [
            0,
            1,
        ]
        assert 0 <= run.data.metrics["final_val_accuracy"] <= 1


def test_an_unreachable_tracker_is_one_warning_at_the_start_and_every_hook_then_a_quick_no_op(
    tmp_path, capsys
):
    pytest.importorskip("mlflow")
    from benchmark.run.folder import RunContext
    from benchmark.run.grid import build_grid
    from benchmark.run.records import CellRecord
    from benchmark.tracking import make_tracker

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    config = RunConfig(
        models=["simple_cnn"], alphas=[0.0, 1.0], mlflow=f"http://127.0.0.1:{closed}"
    )
    ctx = RunContext(config, tmp_path, None, build_grid(config))  # plans resolved on demand
    tracker, started = make_tracker(config, tmp_path), time.monotonic()
    tracker.start_grid(ctx)
    for cell in ctx.cells:
        assert tracker.start_cell(ctx, cell) == []  # the cell trains with no tracking callbacks
        tracker.finish_cell(
            ctx,
            CellRecord(
                cell_id=cell.cell_id,
                index=cell.index,
                model=cell.model,
                alpha=cell.alpha,
                seed=cell.seed,
            ),
        )
    tracker.end_grid(ctx, 0)
    assert time.monotonic() - started < 10
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "warning: cannot reach MLflow tracking at http://127.0.0.1:"
    ), lines
    assert not (tmp_path / "tracking").exists() and not (tmp_path / "mlruns").exists()
    assert not (tmp_path / "mlflow.db").exists()


def test_tensorboard_puts_both_fits_of_a_cell_on_one_epoch_axis(tmp_path):
    pytest.importorskip("tensorboard")
    import keras
    import numpy as np
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from benchmark.tracking.callbacks import PhasedTensorBoard

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile("sgd", "mse")
    board = PhasedTensorBoard(
        tmp_path / "tb"
    )  # one callback for both phases, as train_two_phase passes it
    x, y = np.zeros((8, 3)), np.zeros((8, 2))
    for _ in range(2):  # phase 1, then phase 2 (a new fit, epochs from 0 again)
        model.fit(x, y, validation_data=(x, y), epochs=2, verbose=0, callbacks=[board])
    for part in ("train", "validation"):
        events = EventAccumulator(
            str(tmp_path / "tb" / part), size_guidance={"tensors": 0}
        ).Reload()
        assert sorted(e.step for e in events.Tensors("epoch_loss")) == [0, 1, 2, 3], part


def test_final_metrics_carry_calibration_and_the_figures_without_tta(tmp_path):
    from benchmark.run.records import CellRecord
    from benchmark.tracking.summary import final_metrics

    record = CellRecord(
        cell_id="m__alpha0__seed0",
        index=0,
        model="m",
        alpha=0.0,
        seed=0,
        tta=2,
        metrics={"test": {"accuracy": 0.8, "macro_f1": 0.7}},
        metrics_plain={"test": {"accuracy": 0.75, "macro_f1": 0.65}},
        calibration={"temperature": 1.5, "test": {"ece": 0.1, "ece_scaled": 0.04, "brier": 0.3}},
    )
    metrics = final_metrics(record, tmp_path)
    assert metrics["final_test_accuracy"] == 0.8 and metrics["final_test_accuracy_no_tta"] == 0.75
    assert (
        metrics["temperature"] == 1.5
        and metrics["final_test_ece"] == 0.1
        and metrics["final_test_ece_scaled"] == 0.04
    )
