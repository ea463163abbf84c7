"""`serve` on bad input: one `run_benchmark:` line naming it, exit 2, before TensorFlow loads."""

import shutil
import socket

from app_helpers import one_line_error, run_cli


def test_a_folder_that_is_not_a_finished_run_is_refused(tmp_path):
    (tmp_path / "cells").mkdir()  # started, never finished: no leaderboard.csv
    line = one_line_error(run_cli("serve", str(tmp_path), timeout=120))
    assert str(tmp_path) in line and "not a finished run folder" in line


def test_a_port_in_use_is_refused_naming_the_flag(tiny_run):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        line = one_line_error(run_cli("serve", str(tiny_run[1]), "--port", str(port), timeout=120))
    assert f"--port {port}" in line and "in use" in line


def test_a_run_whose_best_model_is_missing_is_refused(tiny_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(tiny_run[1], copy, ignore=shutil.ignore_patterns("saved_models", "cache"))
    line = one_line_error(run_cli("serve", str(copy), timeout=120))
    assert "no saved model for the best cell (simple_cnn__alpha0__seed0)" in line
