"""Experiment tracking against the real thing: a local MLflow store, a real `mlflow server`,
TensorBoard files.

Checked through MLflow's own client: one parent run per grid and one child per cell, the cell's
params, per-epoch metric histories, final metrics and artifacts; a killed cell resumed against a
server still has one run whose epochs are each logged once. (An unreachable tracker:
tests/benchmark/test_tracking_parts.py.)
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from cli_helpers import TINY_FLAGS, kill_when_epoch_backed_up, make_images, run_cli

pytest.importorskip("mlflow")
os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # folder stores given as --mlflow PATH
CELLS = ("simple_cnn__alpha0__seed0", "simple_cnn__alpha1__seed0")


def client_for(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def runs_of(client, experiment: str):
    """(parent, {cell_id: child run}) of the one grid in `experiment`."""
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment!r}"
    runs = client.search_runs([found.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1, [r.info.run_name for r in runs]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    by_cell = {r.data.tags["benchmark.cell_id"]: r for r in children}
    assert len(by_cell) == len(children), "one run per cell"
    return parents[0], by_cell


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_images(tmp_path_factory.mktemp("tracking") / "data")


def test_local_store_has_a_run_per_cell_with_params_curves_metrics_artifacts_and_tensorboard(
    data, tmp_path, server
):
    """(`server` only boots meanwhile, for the next test.)"""
    run_dir = tmp_path / "grid"
    done = run_cli(
        *TINY_FLAGS,
        "--initial-epochs",
        "2",
        "--no-profile",
        "--data",
        str(data),
        "--output",
        str(run_dir),
        "--mlflow",
        "--tensorboard",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "mlflow" not in done.stderr.lower(), done.stderr  # quiet: no MLflow logging or warnings
    assert [line for line in done.stdout.splitlines() if "mlflow" in line.lower()] == [
        f"mlflow: logging to sqlite:///{(run_dir / 'mlflow.db').resolve()} (experiment 'grid')"
    ]
    store = f"sqlite:///{(run_dir / 'mlflow.db').resolve()}"  # the run folder's own (issue 30)
    parent, cells = runs_of(client_for(store), "grid")
    assert parent.info.status == "FINISHED" and parent.data.params["models"] == "simple_cnn"
    assert sorted(cells) == list(CELLS)
    client = client_for(store)
    for cell_id, run in cells.items():
        record = json.loads((run_dir / "cells" / f"{cell_id}.json").read_text())
        params = run.data.params
        assert (
            params["model"] == "simple_cnn"
            and float(params["alpha"]) == record["alpha"]
            and params["seed"] == "0"
        )
        assert (
            params["image_size"] == "32"
            and params["initial_epochs"] == "2"
            and params["weights"] == "none"
        )
        assert run.info.status == "FINISHED" and run.data.tags["benchmark.status"] == "ok"
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            history = client.get_metric_history(run.info.run_id, key)
            assert [m.step for m in sorted(history, key=lambda m: m.step)] == [0, 1], key
            assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx(
                record["history"][key]
            )
        metrics = run.data.metrics
        assert metrics["final_test_accuracy"] == pytest.approx(
            record["metrics"]["test"]["accuracy"]
        )
        assert (
            metrics["final_test_accuracy_ci_low"]
            <= metrics["final_test_accuracy"]
            <= metrics["final_test_accuracy_ci_high"]
        )
        assert metrics["phase_boundary"] == 2 and metrics["timing_train_seconds"] > 0
        artifacts = {
            a.path
            for folder in ("record", "predictions", "plots")
            for a in client.list_artifacts(run.info.run_id, folder)
        }
        assert {
            f"record/{cell_id}.json",
            f"predictions/{cell_id}.predictions.csv",
            "plots/training_curves.png",
            "plots/confusion_test.png",
        } <= artifacts
        events = {
            p.parent.name
            for p in (run_dir / "tensorboard" / cell_id).rglob("events.out.tfevents.*")
        }
        assert events == {"train", "validation"}
    saved = [
        a.path for run in cells.values() for a in client.list_artifacts(run.info.run_id, "model")
    ]
    assert "model/simple_cnn.keras" in saved  # the best cell's saved model


class Server:
    """A real `mlflow server` on a free localhost port (sqlite backend, served artifacts).

    It boots (half a minute here) while the local-store test trains; `uri()` waits until it answers.
    """

    def __init__(self, root):
        self.root, self.port = root, free_port()
        self.log = open(root / "server.log", "w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--backend-store-uri",
                f"sqlite:///{root / 'mlflow.db'}",
                "--artifacts-destination",
                str(root / "artifacts"),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "1",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def uri(self) -> str:
        uri, deadline = f"http://127.0.0.1:{self.port}", time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"{uri}/health", timeout=2).read()
                return uri
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        "mlflow server did not start: "
                        f"{(self.root / 'server.log').read_text()[-2000:]}"
                    )
                time.sleep(0.5)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    started = Server(tmp_path_factory.mktemp("server"))
    yield started
    started.stop()


EPOCHS = 15
RESUME_FLAGS = (
    "--models",
    "simple_cnn",
    "--alphas",
    "0",
    "--weights",
    "none",
    "--image-size",
    "32",
    "--batch-size",
    "4",
    "--initial-epochs",
    str(EPOCHS),
    "--fine-tune-epochs",
    "0",
    "--patience",
    "1000",
    "--save-models",
    "none",
    "--no-profile",
    "--quiet",
)


def test_a_killed_cell_resumes_its_run_on_a_server_with_every_epoch_logged_once(
    data, tmp_path, server
):
    mlflow_server = server.uri()
    run_dir = tmp_path / "resume"
    flags = [
        *RESUME_FLAGS,
        "--data",
        str(data),
        "--output",
        str(run_dir),
        "--mlflow",
        mlflow_server,
        "--mlflow-experiment",
        "resume-test",
    ]
    state = run_dir / "work" / "simple_cnn__alpha0__seed0" / "single" / "state.json"
    returncode = kill_when_epoch_backed_up(flags, state)
    assert returncode == -signal.SIGKILL, (
        "the cell finished before it could be killed; raise EPOCHS"
    )
    client = client_for(mlflow_server)
    _, cells = runs_of(client, "resume-test")
    assert cells["simple_cnn__alpha0__seed0"].info.status == "RUNNING"

    done = run_cli(*flags)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "resuming simple_cnn__alpha0__seed0 from its backup" in done.stdout
    parent, cells = runs_of(client, "resume-test")
    (run,) = cells.values()
    assert run.info.status == "FINISHED" and parent.info.status == "FINISHED"
    steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "loss"))
    assert steps == list(range(EPOCHS)), "each epoch once, numbering continued across the kill"
    assert (
        run.data.params["initial_epochs"] == str(EPOCHS)
        and run.data.metrics["epochs_trained"] == EPOCHS
    )
    assert {a.path for a in client.list_artifacts(run.info.run_id, "record")} >= {
        "record/simple_cnn__alpha0__seed0.json"
    }
