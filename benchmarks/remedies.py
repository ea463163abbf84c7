"""What each augmentation remedy does to clean, corrupted and target accuracy (issue 37).

    python benchmarks/remedies.py --output DIR [--remedies baseline,mixup] [run flags...]

Runs the normal `run_benchmark.py` once per remedy, into sibling run folders `DIR/<remedy>`, with
every other flag passed through unchanged (`--models`, `--data`, `--image-size`, epochs, ...), so
each remedy's cells differ from the baseline's by the remedy's flags alone. A folder that already
holds a finished run resumes (nothing retrains). Then it prints one table, rows ranked by
validation accuracy (the remedy a preset keeps is chosen there, never on test):

- val_accuracy, test_accuracy: the leaderboard's (clean images);
- corrupt_accuracy, relative_robustness: from the run's `robustness.csv`, the mean accuracy over
  every (corruption, severity 1-5) point, and that over the same images' clean accuracy (leave
  `--robustness` at its default, on);
- target_accuracy: where `--data` names a test-only source (a sources YAML with `test_only`), its
  test accuracy: the cross-dataset figure;
- bn_clean_accuracy, bn_corrupt_accuracy: with `--adapt-bn`, the test-time remedy on top of each
  trained one: `run_benchmark.py robustness RUN --adapt-bn` scores the same images with the
  model's BatchNorm statistics re-estimated on each image set (docs/shift-robustness.md);
- tta_clean_accuracy, tta_corrupt_accuracy: with `--tta N`, test-time augmentation on top of each
  trained one: `run_benchmark.py robustness RUN --tta N` scores the same images with the softmax
  averaged over N test-time views.

The table is also written to `DIR/remedies.csv`. On the embedded sample in a few minutes:

    python benchmarks/remedies.py --output /tmp/remedies --models efficientnet_lite0 \\
        --image-size 64 --alphas 0 --initial-epochs 1 --fine-tune-epochs 1 --no-profile
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pandas as pd

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))  # run as a script from anywhere

from tabulate import tabulate  # noqa: E402

# Each remedy's flags, at the strengths the papers and timm use by default.
REMEDIES: dict[str, list[str]] = {
    "baseline": [],
    "randaugment": ["--augment-policy", "randaugment"],
    "augmix": ["--augment-policy", "augmix"],
    "random_erasing": ["--random-erasing", "0.25"],
    "mixup": ["--mixup", "0.2"],
    "cutmix": ["--cutmix", "1.0"],
}
REMEDY_FLAGS = ("--augment-policy", "--random-erasing", "--mixup", "--cutmix", "--no-augment")
CLEAN = "none"  # robustness.csv's corruption of the clean row (benchmark.run.robustness.CLEAN)
SOURCE_PREFIX = "test_accuracy_on_"  # benchmark.results.columns.SOURCE_PREFIX
COLUMNS = [
    "remedy",
    "model",
    "alpha",
    "val_accuracy",
    "test_accuracy",
    "corrupt_accuracy",
    "relative_robustness",
    "target_accuracy",
    "bn_clean_accuracy",
    "bn_corrupt_accuracy",
    "tta_clean_accuracy",
    "tta_corrupt_accuracy",
]
SCORED_ON_TOP = COLUMNS[-4:]  # blank unless --adapt-bn / --tta asked for them


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--output", type=Path, required=True, help="parent of the run folders")
    parser.add_argument(
        "--remedies",
        default=",".join(REMEDIES),
        help=f"comma list of remedies to run (default all: {', '.join(REMEDIES)})",
    )
    parser.add_argument(
        "--adapt-bn",
        action="store_true",
        help="also score each run with test-time BatchNorm adaptation (robustness RUN --adapt-bn)",
    )
    parser.add_argument(
        "--tta",
        type=int,
        default=0,
        metavar="N",
        help="also score each run with N test-time views averaged (robustness RUN --tta N)",
    )
    return parser


def chosen_remedies(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",")]
    unknown = [name for name in names if name not in REMEDIES]
    if unknown or not names:
        raise ValueError(f"--remedies: unknown {', '.join(unknown)}; known: {', '.join(REMEDIES)}")
    return list(dict.fromkeys(names))


def target_sources(run_dir: Path) -> list[str]:
    """Sources whose every image is in the test split (never trained on): the targets."""
    path = run_dir / "splits.csv"
    if not path.is_file() or "source" not in pd.read_csv(path, nrows=0).columns:
        return []
    table = pd.read_csv(path, usecols=["split", "source"], dtype=str, keep_default_na=False)
    return [name for name, part in table.groupby("source") if (part["split"] == "test").all()]


def corruption_means(run_dir: Path) -> pd.DataFrame:
    """Per model and alpha (mean over seeds): mean corrupted accuracy and its ratio to clean."""
    path = run_dir / "robustness.csv"
    columns = ["model", "alpha", "corrupt_accuracy", "relative_robustness"]
    if not path.is_file():
        return pd.DataFrame(columns=columns)
    frame = pd.read_csv(path)
    rows = []
    for (model, alpha, _seed), part in frame.groupby(["model", "alpha", "seed"]):
        clean = part.loc[part["corruption"] == CLEAN, "accuracy"]
        corrupted = part.loc[part["corruption"] != CLEAN, "accuracy"].mean()
        ratio = corrupted / clean.iloc[0] if len(clean) and clean.iloc[0] > 0 else float("nan")
        rows.append((model, float(alpha), corrupted, ratio))
    cells = pd.DataFrame(rows, columns=columns)
    return cells.groupby(["model", "alpha"], as_index=False)[columns[2:]].mean()


def remedy_rows(remedy: str, run_dir: Path) -> pd.DataFrame:
    """One row per leaderboard row (model x alpha) of one remedy's run folder."""
    board = pd.read_csv(run_dir / "leaderboard.csv")
    board = board.drop(
        columns=[c for c in ("corrupt_accuracy", "relative_robustness") if c in board]
    )
    board = board.merge(corruption_means(run_dir), on=["model", "alpha"], how="left")
    targets = [SOURCE_PREFIX + name for name in target_sources(run_dir)]
    targets = [column for column in targets if column in board.columns]
    board["target_accuracy"] = board[targets].mean(axis=1) if targets else float("nan")
    board["remedy"] = remedy
    for column in SCORED_ON_TOP:
        if column not in board:
            board[column] = float("nan")
    return board[COLUMNS]


def main(argv: list[str] | None = None) -> int:
    args, run_flags = build_parser().parse_known_args(argv)
    try:
        remedies = chosen_remedies(args.remedies)
    except ValueError as err:
        print(f"remedies: {err}", file=sys.stderr)
        return 2
    clashing = sorted({flag for flag in run_flags if flag.split("=")[0] in REMEDY_FLAGS})
    if clashing:
        print(
            f"remedies: {', '.join(clashing)} is set per remedy by this script; drop it",
            file=sys.stderr,
        )
        return 2
    for remedy in remedies:
        run_dir = args.output / remedy
        command = [sys.executable, str(PROJECT_ROOT / "run_benchmark.py"), *run_flags]
        command += [*REMEDIES[remedy], "--output", str(run_dir)]
        print(f"remedies: {remedy}: {' '.join(command[1:])}", flush=True)
        done = subprocess.run(command, cwd=PROJECT_ROOT)
        if done.returncode == 2:  # bad input: the same for every remedy
            return 2
        if not (run_dir / "leaderboard.csv").is_file():
            print(f"remedies: {remedy} wrote no leaderboard ({run_dir})", file=sys.stderr)
            return 1
        robustness = [sys.executable, str(PROJECT_ROOT / "run_benchmark.py"), "robustness"]
        if args.adapt_bn:
            subprocess.run([*robustness, str(run_dir), "--adapt-bn"], cwd=PROJECT_ROOT, check=True)
        if args.tta:
            views = ["--tta", str(args.tta)]
            subprocess.run([*robustness, str(run_dir), *views], cwd=PROJECT_ROOT, check=True)
    table = pd.concat([remedy_rows(r, args.output / r) for r in remedies], ignore_index=True)
    table = table.sort_values("val_accuracy", ascending=False, kind="stable")
    table.to_csv(args.output / "remedies.csv", index=False)
    shown = table.dropna(axis=1, how="all")
    print(tabulate(shown, headers="keys", tablefmt="github", showindex=False, floatfmt=".3f"))
    print(f"remedies: ranked by validation accuracy; table in {args.output / 'remedies.csv'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
