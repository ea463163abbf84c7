"""`serve` refusals about the folder, read from files alone (no run is trained here): no finished
run under results/, a path that is not a folder."""

import pytest

from benchmark.app.run_folder import check_run, latest_run
from benchmark.errors import UsageError


@pytest.mark.parametrize("made", [False, True], ids=["no-results", "only-unfinished"])
def test_serve_with_no_finished_run_under_results_is_refused(tmp_path, made):
    results = tmp_path / "results"
    if made:
        (results / "started" / "cells").mkdir(parents=True)  # never finished: no leaderboard.csv
    expected = f"no finished run folder under {str(results)!r}; pass one: serve RUN_DIR"
    with pytest.raises(UsageError, match="^" + expected.replace("(", r"\(")):
        latest_run(results)


def test_serve_on_a_file_is_refused_as_not_a_folder(tmp_path):
    path = tmp_path / "leaderboard.csv"
    path.write_text("rank\n")
    with pytest.raises(UsageError, match=r"^serve: '.*leaderboard.csv' is not a folder; pass a"):
        check_run(str(path))
