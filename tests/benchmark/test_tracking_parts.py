"""The tracking parts that need no training: the epoch timeline, run-id claims, URIs and config keys."""
import json
from pathlib import Path

import pytest

from benchmark.config.run_config import RunConfig, differing_keys
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
    resumed = EpochClock(backups)  # a re-run: phase 1 is reloaded, not fitted; phase 2 resumes at its epoch 2
    resumed.begin_fit()
    assert resumed.phase == 1 and resumed.offset == 4 and resumed.step(2) == 6


def test_concurrent_creators_of_the_parent_run_agree_on_one_id(tmp_path):
    id_file = tmp_path / "tracking" / "grid.json"
    assert claim_id(id_file, "http://a", "first") == "first"
    assert claim_id(id_file, "http://a", "second") == "first"  # the loser takes the winner's id
    assert claim_id(id_file, "sqlite:///b.db", "other") == "other"  # another store keeps its own id
    assert claim_id(id_file, "http://a", "fresh", stale="first") == "fresh"  # the stored run was deleted
    assert read_ids(id_file) == {"http://a": "fresh", "sqlite:///b.db": "other"}
    assert not [p for p in id_file.parent.iterdir() if p.name.startswith(".")]


def test_tracking_uris_and_params():
    run_dir = Path("/tmp/some/run")
    assert tracking_uri(True, run_dir) == "file:///tmp/some/run/mlruns" == tracking_uri("local", run_dir)
    assert tracking_uri("http://host:5000", run_dir) == "http://host:5000"
    assert tracking_uri("sqlite:///x.db", run_dir) == "sqlite:///x.db"
    assert tracking_uri("/srv/mlruns", run_dir) == "file:///srv/mlruns"
    assert flat_params({"a": 1, "simple_cnn": {"filters": [8, 16]}}) == {"a": 1, "simple_cnn.filters": [8, 16]}
    assert param_value([0.0, 0.5]) == "0.0,0.5" and param_value(None) == "None"


def test_tracking_keys_are_output_only_and_checked():
    saved = RunConfig(models=["simple_cnn"]).to_dict()
    changed = RunConfig(models=["simple_cnn"], mlflow="http://host:5000", mlflow_experiment="x", tensorboard=True)
    assert differing_keys(saved, changed.to_dict()) == []  # a resume may turn tracking on or move it
    with pytest.raises(UsageError, match="--mlflow"):
        RunConfig(models=["simple_cnn"], mlflow=3)
