"""benchmarks/remedies.py's table from hand-made run folders: corrupted accuracy and relative
robustness from robustness.csv, the target column from a test-only source, rows ranked by
validation; and its refusals (exit 2, one line)."""

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location(
    "remedies_script", ROOT / "benchmarks" / "remedies.py"
)
remedies = importlib.util.module_from_spec(spec)
spec.loader.exec_module(remedies)


def write_run(run_dir: Path, val: float, corrupted: list[float], clean: float) -> Path:
    run_dir.mkdir(parents=True)
    pd.DataFrame(
        {
            "model": ["efficientnet_lite0"],
            "alpha": [0.0],
            "val_accuracy": [val],
            "test_accuracy": [0.8],
            "corrupt_accuracy": [0.0],  # the script recomputes it from robustness.csv
            "test_accuracy_on_web": [0.6],
            "test_accuracy_on_trashnet": [0.9],
        }
    ).to_csv(run_dir / "leaderboard.csv", index=False)
    rows = [("none", 0, clean)] + [("blur", s + 1, a) for s, a in enumerate(corrupted)]
    pd.DataFrame(
        [("c", "efficientnet_lite0", 0.0, 0, c, s, a) for c, s, a in rows],
        columns=["cell_id", "model", "alpha", "seed", "corruption", "severity", "accuracy"],
    ).to_csv(run_dir / "robustness.csv", index=False)
    pd.DataFrame(
        {
            "path": ["a", "b", "c", "d"],
            "split": ["train", "val", "test", "test"],
            "source": ["trashnet", "trashnet", "trashnet", "web"],
        }
    ).to_csv(run_dir / "splits.csv", index=False)
    return run_dir


def test_rows_read_robustness_and_the_test_only_source(tmp_path):
    run_dir = write_run(tmp_path / "mixup", 0.7, [0.4, 0.2], clean=0.6)
    assert remedies.target_sources(run_dir) == ["web"]
    (row,) = remedies.remedy_rows("mixup", run_dir).to_dict("records")
    assert row["remedy"] == "mixup" and row["target_accuracy"] == pytest.approx(0.6)
    assert row["corrupt_accuracy"] == pytest.approx(0.3)
    assert row["relative_robustness"] == pytest.approx(0.5)


def test_the_table_is_ranked_by_validation(tmp_path, capsys, monkeypatch):
    write_run(tmp_path / "baseline", 0.6, [0.5], clean=0.6)
    write_run(tmp_path / "cutmix", 0.9, [0.5], clean=0.6)
    monkeypatch.setattr(
        remedies.subprocess, "run", lambda *a, **k: type("Done", (), {"returncode": 0})
    )
    assert remedies.main(["--output", str(tmp_path), "--remedies", "baseline,cutmix"]) == 0
    table = pd.read_csv(tmp_path / "remedies.csv")
    assert list(table["remedy"]) == ["cutmix", "baseline"]


def test_adapt_bn_scores_each_run_and_reads_the_adapted_columns(tmp_path, monkeypatch):
    for name in ("baseline", "cutmix"):
        run_dir = write_run(tmp_path / name, 0.6, [0.5], clean=0.6)
        board = pd.read_csv(run_dir / "leaderboard.csv")
        board.assign(bn_clean_accuracy=0.55, bn_corrupt_accuracy=0.52).to_csv(
            run_dir / "leaderboard.csv", index=False
        )
    calls = []

    def run(command, **kwargs):
        calls.append(command[2:])
        return type("Done", (), {"returncode": 0})

    monkeypatch.setattr(remedies.subprocess, "run", run)
    argv = ["--output", str(tmp_path), "--remedies", "baseline,cutmix", "--adapt-bn"]
    assert remedies.main(argv) == 0
    scored = [c for c in calls if c[0] == "robustness"]
    assert scored == [
        ["robustness", str(tmp_path / r), "--adapt-bn"] for r in ("baseline", "cutmix")
    ]
    table = pd.read_csv(tmp_path / "remedies.csv")
    assert table["bn_corrupt_accuracy"].tolist() == [0.52, 0.52]


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--remedies", "baseline,autoaugment"], "unknown autoaugment"),
        (["--mixup", "0.2"], "--mixup is set per remedy"),
    ],
)
def test_refusals(tmp_path, capsys, argv, words):
    assert remedies.main(["--output", str(tmp_path / "out"), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0]
    assert not (tmp_path / "out").exists()
