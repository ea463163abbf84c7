"""--dry-run states each cell's side, epochs, data paths and an estimated time, and the output
folder, for the default comparison on the embedded sample, without writing anything."""

from benchmark.commands import print_dry_run
from benchmark.config.run_config import resolve_config
from benchmark.plan.cost import COSTS
from benchmark.run.folder import prepare_run


def test_the_dry_run_states_side_epochs_paths_time_and_folder(tmp_path, capsys):
    config = resolve_config(None, None, {})
    run_dir = tmp_path / "run"
    print_dry_run(prepare_run(config, run_dir, write=False))
    out = capsys.readouterr().out
    table = grid_table(out)
    rows = {(row["model"], row["alpha"]): row for row in table}

    def stated(model, alpha):
        row = rows[model, alpha]
        return row["px"], row["epochs"], row["phase 1"], row["phase 2"]

    assert stated("efficientnet_lite0", "0") == ("128", "10+10", "bank, fills", "bank*, fills")
    assert stated("efficientnet_lite0", "1") == ("128", "10+10", "bank, reuses", "bank*, reuses")
    assert stated("simple_cnn", "0") == ("128", "20+0", "online (whole net)", "none")
    # Every family of the default grid is measured, so no cell is a guess; reusing a bank is
    # cheaper than filling it.
    assert {"efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "scratch"} <= set(
        COSTS
    )
    assert " ?" not in out.split("estimated time")[0]
    times = {(row["model"], row["alpha"]): row["est. time"] for row in table}
    assert len(times) == 6 and all(t.startswith("~0:") for t in times.values())
    assert times["efficientnet_lite0", "1"] < times["efficientnet_lite0", "0"]
    assert "estimated time: ~0:" in out and "an ESTIMATE" in out
    assert f"output folder: {run_dir} (--dry-run creates nothing)" in out
    assert not run_dir.exists()


def grid_table(out: str) -> list[dict[str, str]]:
    """The rows of the dry run's cell table, by column name."""
    lines = [line for line in out.split("\n\n")[0].splitlines() if line.startswith("|")]
    header = [h.strip() for h in lines[0].strip("|").split("|")]
    return [
        dict(zip(header, (v.strip() for v in line.strip("|").split("|")))) for line in lines[2:]
    ]
