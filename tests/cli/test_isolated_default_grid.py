"""The no-argument run's whole default grid, each cell in its own child process. A file of its own:
it is one of the two longest tests, and `--dist loadfile` gives each file to one process, so beside
test_isolated_cells.py it would keep one process busy for both."""

import pandas as pd
from cli_helpers import make_images, run_cli
from test_isolated_cells import SHRUNK


def test_the_whole_default_grid_trains_in_isolated_cells(tmp_path):
    """The no-argument run's grid (its models and alphas, nothing named), shrunk to 32 px and one
    epoch a phase on a tiny sample, each cell in its own child process."""
    from benchmark.config.run_config import DEFAULT_ALPHAS, DEFAULT_MODELS

    data = make_images(tmp_path / "data", per_class=8)
    run_dir = tmp_path / "run"
    done = run_cli("--data", str(data), "--output", str(run_dir), *SHRUNK)
    assert done.returncode == 0, done.stdout + done.stderr
    board = pd.read_csv(run_dir / "leaderboard.csv")
    assert (board["status"] == "ok").all()
    assert set(board["model"]) == set(DEFAULT_MODELS)
    assert sorted(set(board["alpha"])) == sorted(DEFAULT_ALPHAS)
    assert len(board) == len(DEFAULT_MODELS) * len(DEFAULT_ALPHAS)
