"""One MLflow tracking store for a run: connect quickly or not at all, and never let it stop the
run.

The records on disk are the source of truth; MLflow only mirrors them. So the store is probed with
a bounded timeout before the first cell (an unreachable server is one `warning:` line and the run
goes on untracked), HTTP calls get short timeouts and few retries (MLflow's defaults retry for
minutes), and any later failure turns tracking off for the rest of the run with one more warning.

`--mlflow` alone logs to a SQLite store in the run folder, `sqlite:///RUN_DIR/mlflow.db` (MLflow 3
keeps its folder store, `mlruns/`, in maintenance mode and recommends a database), with artifacts in
`RUN_DIR/mlartifacts/`. Processes that open one SQLite store at once (Slurm array tasks) would race
to create its schema on first use (MLflow runs its alembic migrations when the tables are missing),
so opening a SQLite store happens under an `fcntl` lock on `<file>.lock`: the first creates the
schema, the others wait and find it. Later writes rely on SQLite's own locking.

Runs are opened with `MlflowClient` rather than MLflow's fluent API: no process-wide active run,
no git probing, no "View run at" lines on the console. Run ids are kept in small JSON files keyed
by tracking URI, so a resumed or requeued cell reopens its run, and a changed `--mlflow` starts
fresh runs in the new store instead of pointing at ids of another one.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import logging
import math
import os
import socket
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from benchmark.errors import error_line
from benchmark.io import write_json_atomic
from benchmark.output import warn

# Bounded network behaviour; a user's own settings win.
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
}
PROBE_SECONDS = 5.0
PARAM_LIMIT = (
    500  # characters of one param value (MLflow allows more; long lists help nobody in a table)
)


def tracking_uri(setting: bool | str, run_dir: Path) -> str:
    """`--mlflow` as a URI: True/"local" is the run folder's own store; a path becomes a file URI.

    The run folder's own store is `sqlite:///RUN_DIR/mlflow.db`, except in a folder whose runs were
    logged to the folder store `RUN_DIR/mlruns` before (a resume reopens them there) or where
    SQLAlchemy and alembic, which MLflow's database stores need, are not installed.
    """
    if setting is True or setting == "local":
        run_dir = Path(run_dir).resolve()
        folder_store = run_dir / "mlruns"
        earlier = folder_store.is_dir() and not (run_dir / "mlflow.db").exists()
        if earlier or not sqlite_available():
            return folder_store.as_uri()
        return f"sqlite:///{run_dir / 'mlflow.db'}"
    text = str(setting)
    if "://" in text or text.startswith(("sqlite:", "databricks")):
        return text
    return Path(text).expanduser().resolve().as_uri()


def sqlite_available() -> bool:
    """Whether MLflow can open a database store here (`mlflow-skinny` alone lacks these two)."""
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ("sqlalchemy", "alembic"))


def sqlite_file(uri: str) -> Path | None:
    """The database file of a `sqlite:///path` URI; None for other stores and in-memory SQLite."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri.removeprefix("sqlite:///").split("?")[0]
    return Path(path) if path and path != ":memory:" else None


@contextlib.contextmanager
def schema_lock(uri: str):
    """Held while a SQLite store is opened: one process at a time creates or checks its schema."""
    database = sqlite_file(uri)
    if database is None:
        yield
        return
    database.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(database.with_name(database.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # blocks while another process creates the schema
        yield
    finally:
        os.close(fd)  # closing releases the lock


def artifact_location(uri: str) -> str | None:
    """Where a new experiment keeps its artifacts: beside a SQLite file (`mlartifacts/`), not in
    the current directory (MLflow's default for database stores); else the store's own choice."""
    database = sqlite_file(uri)
    return (database.parent / "mlartifacts").resolve().as_uri() if database is not None else None


def quiet_mlflow() -> None:
    """MLflow logs at INFO and warns about its file store; a normal run shows none of it."""
    for key, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)
    # MLflow 3 refuses a plain folder store unless asked: one given as --mlflow PATH, or a run
    # folder that began on one before SQLite became the default (or without SQLAlchemy).
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    quiet_mlflow_loggers()


def quiet_mlflow_loggers() -> None:
    """Again after importing mlflow: its import sets its own loggers' levels back to INFO."""
    for name in ("mlflow", "alembic", "urllib3.connectionpool"):
        logging.getLogger(name).setLevel(logging.ERROR)


def probe(uri: str) -> None:
    """Raises OSError within `PROBE_SECONDS` when an http(s) tracking server does not accept
    connections."""
    parsed = urlparse(uri)
    if parsed.scheme not in ("http", "https"):
        return
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    with socket.create_connection((parsed.hostname or "localhost", port), timeout=PROBE_SECONDS):
        pass


class MlflowStore:
    """A connected store; every method returns None instead of raising once tracking is off."""

    def __init__(self, uri: str):
        self.uri = uri
        self.client = None
        self.enabled = True

    def connect(self) -> bool:
        """Probes and opens the store; on failure prints the one warning and returns False."""
        try:
            quiet_mlflow()
            probe(self.uri)
            from mlflow.tracking import MlflowClient

            quiet_mlflow_loggers()  # before the schema is created ("Creating initial MLflow ...")
            with schema_lock(self.uri):  # a new SQLite store's tables are created here, once
                self.client = MlflowClient(tracking_uri=self.uri)
                self.client.search_experiments(max_results=1)  # touches the store (HTTP: timeouts)
        except Exception as err:  # noqa: BLE001 - any failure to connect means: run on, untracked
            self.disable(f"cannot reach MLflow tracking at {self.uri} ({error_line(err)})")
            return False
        return True

    def disable(self, why: str) -> None:
        if self.enabled:
            warn(f"{why}; experiment tracking is off for this run (results on disk are unaffected)")
        self.enabled = False

    def guard(self, what: str, action, *args, **kwargs):
        """Runs one tracking call; a failure turns tracking off (one warning) and returns None."""
        if not self.enabled:
            return None
        try:
            return action(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 - tracking must never stop or fail a cell
            self.disable(f"MLflow {what} failed ({error_line(err)})")
            return None

    # The calls below run inside `guard`.

    def experiment_id(self, name: str) -> str:
        """The experiment named `name`, created (or restored) when missing; concurrent creators
        agree."""
        found = self.client.get_experiment_by_name(name)
        if found is None:
            try:
                location = artifact_location(self.uri)
                return self.client.create_experiment(name, artifact_location=location)
            except Exception:  # another task created it first
                found = self.client.get_experiment_by_name(name)
                if found is None:
                    raise
        if found.lifecycle_stage == "deleted":
            self.client.restore_experiment(found.experiment_id)
        return found.experiment_id

    def open_run(
        self,
        experiment_id: str,
        id_file: Path,
        *,
        name: str,
        tags: dict[str, str],
        params: dict[str, Any],
        shared: bool = False,
    ) -> tuple[str, bool]:
        """Reopens the run whose id `id_file` holds for this store, or creates one; returns (run id,
        resumed).

        A run that ended FAILED is not reopened: re-running a failed cell is a new attempt with its
        own curves. `shared` (the grid's parent, which concurrent array tasks may all open) claims
        the id with an exclusive link, so they end with one run: a loser deletes its own and takes
        the winner's.
        """
        stored = read_ids(id_file).get(self.uri)
        status = self._status(stored) if stored else None
        if status is not None and status != "FAILED":
            self.client.update_run(stored, status="RUNNING")
            self.log(stored, params=missing_params(self.client.get_run(stored).data.params, params))
            return stored, True
        run_id = self.client.create_run(experiment_id, run_name=name, tags=tags).info.run_id
        if shared:
            winner = claim_id(id_file, self.uri, run_id, stale=stored)
            if winner != run_id:
                self.client.delete_run(run_id)
                return winner, True
        else:
            id_file.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(id_file, {**read_ids(id_file), self.uri: run_id})
        self.log(run_id, params=params)
        return run_id, False

    def _status(self, run_id: str) -> str | None:
        """The run's status, or None when it is gone (deleted, or an id of another store)."""
        try:
            run = self.client.get_run(run_id)
        except Exception:  # noqa: BLE001
            return None
        return run.info.status if run.info.lifecycle_stage == "active" else None

    def log(
        self,
        run_id: str,
        *,
        metrics: dict[str, float] | None = None,
        step: int = 0,
        params: dict[str, Any] | None = None,
        tags: dict[str, Any] | None = None,
    ) -> None:
        """One batch of metrics at `step`, params and tags (non-finite metrics are left out)."""
        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        metric_rows = [
            Metric(k, float(v), now, int(step))
            for k, v in (metrics or {}).items()
            if isinstance(v, (int, float)) and math.isfinite(float(v))
        ]
        param_rows = [Param(k, param_value(v)) for k, v in (params or {}).items()]
        tag_rows = [RunTag(k, str(v)[:5000]) for k, v in (tags or {}).items()]
        for start in range(0, max(len(metric_rows), len(param_rows), len(tag_rows), 1), 100):
            chunk = slice(start, start + 100)
            if metric_rows[chunk] or param_rows[chunk] or tag_rows[chunk]:
                self.client.log_batch(
                    run_id,
                    metrics=metric_rows[chunk],
                    params=param_rows[chunk],
                    tags=tag_rows[chunk],
                )

    def log_history(self, run_id: str, history: dict[str, list[float]]) -> int:
        """Fills the per-epoch steps a kill left unlogged (a resumed cell); returns how many it
        added."""
        from mlflow.entities import Metric

        now, rows = int(time.time() * 1000), []
        for key, values in history.items():
            if not isinstance(values, list):
                continue
            logged = {m.step for m in self.client.get_metric_history(run_id, key)}
            rows += [
                Metric(key, float(v), now, step)
                for step, v in enumerate(values)
                if step not in logged and math.isfinite(float(v))
            ]
        for start in range(0, len(rows), 1000):
            self.client.log_batch(run_id, metrics=rows[start : start + 1000])
        return len(rows)

    def close(self, run_id: str, status: str = "FINISHED") -> None:
        with contextlib.redirect_stdout(
            io.StringIO()
        ):  # MLflow prints "View run ... at" for servers
            self.client.set_terminated(run_id, status)


def param_value(value: Any) -> str:
    """A configuration value as an MLflow param: lists comma-joined, None as "None", capped in
    length."""
    if isinstance(value, (list, tuple)):
        value = ",".join(str(v) for v in value)
    return str(value)[:PARAM_LIMIT]


def flat_params(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings (the `simple_cnn` knobs) as dotted keys, so every knob is its own column."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(flat_params(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def missing_params(logged: dict[str, str], wanted: dict[str, Any]) -> dict[str, Any]:
    """Params are write-once in MLflow: a reopened run gets only the keys it lacks."""
    return {key: value for key, value in wanted.items() if key not in logged}


def read_ids(id_file: Path) -> dict[str, str]:
    try:
        return json.loads(Path(id_file).read_text())
    except (OSError, ValueError):
        return {}


def claim_id(id_file: Path, uri: str, run_id: str, *, stale: str | None = None) -> str:
    """Records `run_id` for `uri` unless another process already did; returns the id that holds.

    The first claim is an exclusive hard link of a finished file, so a reader never sees half a file
    and two creators cannot both win. A file that exists (an earlier store's ids, or a run since
    deleted) is rewritten in place: by then the grid's parent is no longer created concurrently.
    """
    id_file = Path(id_file)
    id_file.parent.mkdir(parents=True, exist_ok=True)
    if id_file.exists():
        ids = read_ids(id_file)
        if ids.get(uri) not in (None, stale, run_id):
            return ids[uri]  # a concurrent task won the claim after this one read the file
        write_json_atomic(id_file, {**ids, uri: run_id})
        return run_id
    draft = id_file.with_name(f".{id_file.name}.{os.getpid()}.{run_id}")
    draft.write_text(json.dumps({uri: run_id}))
    try:
        os.link(draft, id_file)
        return run_id
    except FileExistsError:
        return read_ids(id_file).get(uri) or run_id
    finally:
        draft.unlink(missing_ok=True)
