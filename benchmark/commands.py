"""What each command-line subcommand does, so `run_benchmark.py` only parses flags."""

from __future__ import annotations

import time
from pathlib import Path

import yaml
from tabulate import tabulate

from benchmark.config.run_config import RunConfig
from benchmark.deployment.run_costs import print_notes, profile_run
from benchmark.errors import UsageError
from benchmark.output import say
from benchmark.plan.cost import grid_estimates, run_overhead_seconds
from benchmark.progress import clock
from benchmark.results.columns import CONSOLE_COLUMNS
from benchmark.results.report import write_report
from benchmark.results.tables import build_tables, to_markdown
from benchmark.run.fetch_weights import check_weights_available
from benchmark.run.folder import claim_run, resolve_run
from benchmark.run.loop import finish_late_fusion, run_grid
from benchmark.run.records import finished_cell_ids
from benchmark.tracking import make_tracker
from data_pipeline import source_counts


def default_output() -> Path:
    return Path("results") / time.strftime("%Y%m%d-%H%M%S")


def run_command(config: RunConfig, *, output, force, cell, dry_run, quiet) -> int:
    """Runs (or, with `dry_run`, describes) the grid of a checked configuration, in four steps,
    each once: resolve and check everything (writing nothing), claim the run folder, train the
    cells, write the tables. A refusal or a dry run therefore leaves no file behind.

    Returns 1 if any cell failed, else 0.
    """
    run_dir = Path(output) if output else default_output()
    context = resolve_run(config, run_dir, force=force)
    if cell is not None and not 0 <= cell < len(context.cells):
        raise UsageError(
            f"--cell {cell} is out of range; this grid has cells 0..{len(context.cells) - 1}"
        )
    # Last, being the slow check; a dry run checks converted checkpoints without caching them.
    check_weights_available(
        list(dict.fromkeys(c.model for c in context.cells)),
        context.config.weights,
        context.config.text_encoder,
        context.config.image_size,
        cache=not dry_run,
    )
    if dry_run:
        print_dry_run(context)
        return 0
    context = claim_run(context, force=force)
    say(f"run folder: {run_dir} ({len(context.cells)} cells)")
    tracker = make_tracker(context.config, run_dir)
    failed = run_grid(context, only=None if cell is None else [cell], quiet=quiet, tracker=tracker)
    if (
        context.config.profile and cell is None
    ):  # a single --cell (a Slurm task) leaves profiling to the merge job
        print_notes(profile_run(run_dir, quiet=quiet))
    tables = build_tables(run_dir)
    report = write_report(run_dir, tables)
    print_leaderboard(tables["leaderboard"])
    say(f"tables and {report.name} written to {run_dir}")
    tracker.end_grid(context, failed)
    if failed:
        say(
            f"{failed} cell(s) failed; their errors are in the leaderboard and in "
            f"{run_dir / 'cells'}"
        )
    return 1 if failed else 0


def print_leaderboard(board) -> None:
    """The leaderboard's headline columns (leaderboard.csv/.md have them all)."""
    say("\nleaderboard (ranked by validation accuracy; test shown, never used to rank):")
    say(to_markdown(board[list(CONSOLE_COLUMNS)]))


def print_dry_run(context) -> None:
    """The grid, each cell's side, epochs, data paths and estimated time, the output folder and the
    split, without training or writing anything."""
    config, folds = context.config, context.config.folds
    say(
        f"grid: {len(context.cells)} cells = {len(config.models)} models x "
        f"{len(config.alphas)} alphas "
        f"x {len(config.seeds)} seeds" + (f" x {folds} folds" if folds else "")
    )
    done = finished_cell_ids(context.run_dir) if context.run_dir.is_dir() else set()
    fold_column = [[] if folds is None else [c.fold] for c in context.cells]
    estimates = grid_estimates(
        context.cells,
        {c.model: context.plan(c.model) for c in context.cells},
        config,
        lambda fold: len(context.for_fold(fold).split.subset("train")),
    )
    say(
        tabulate(
            [
                [
                    c.index,
                    c.model,
                    f"{c.alpha:g}",
                    c.seed,
                    *fold,
                    est.side,
                    f"{est.epochs[0]}+{est.epochs[1]}",
                    est.phase1,
                    est.phase2,
                    "-" if c.cell_id in done else _estimate_text(est),
                    "finished" if c.cell_id in done else "",
                ]
                for c, fold, est in zip(context.cells, fold_column, estimates)
            ],
            headers=[
                "cell",
                "model",
                "alpha",
                "seed",
                *(["fold"] if folds else []),
                "px",
                "epochs",
                "phase 1",
                "phase 2",
                "est. time",
                "status",
            ],
            tablefmt="github",
        )
    )
    todo = [e for c, e in zip(context.cells, estimates) if c.cell_id not in done]
    models = len({c.model for c in context.cells if c.cell_id not in done})
    total = sum(e.seconds for e in todo) + (run_overhead_seconds(config, models) if todo else 0)
    say(
        "\nepochs: phase 1 + phase 2 (a from-scratch network trains once, on both budgets); early "
        "stopping may end a phase sooner\nphase 1/2: bank = stored backbone features or "
        "activations (a model's first cell fills the bank, later cells reuse it); online = every "
        "image through the backbone every epoch; bank* = the built model decides (bank where its "
        "fine-tune cut allows, else online, said in one line when it trains)"
    )
    say(
        f"estimated time: ~{clock(total)} for {len(todo)} cell(s) to run, with start-up, report"
        + (" and deployment profiles" if config.profile else "")
        + ": an ESTIMATE for 2 idle CPU cores from the cost model in benchmark/plan/cost.py "
        "(docs/first-run.md), an upper bound where early stopping ends phases sooner"
        + ("; ? = a family it has not measured" if any(not e.measured for e in todo) else "")
    )
    say(f"output folder: {context.run_dir} (--dry-run creates nothing)")
    split = context.any_split()
    say(f"\ndataset: {len(split.class_names)} classes: {', '.join(split.class_names)}")
    for fold, table in (
        [(None, context.split)] if folds is None else list(enumerate(context.fold_splits))
    ):
        counts = table.counts()
        parts = [p for p in ("train", "val", "test") if p in counts]
        rows = [[name, *[counts[p].get(name, 0) for p in parts]] for name in table.class_names]
        rows.append(["total", *[sum(counts[p].values()) for p in parts]])
        if fold is not None:
            say(f"\nfold {fold}:")
        say(tabulate(rows, headers=["class", *parts], tablefmt="github"))
    if rows := source_counts(split.table):  # merged sources (docs/sources.md): images per source
        say("\n" + tabulate(rows, headers=["source", "train", "val", "test"], tablefmt="github"))
    note = " in every fold; the test folds partition the images" if folds else ""
    say(f"\nleak check: {split.leaks.summary()}{note}")


def _estimate_text(estimate) -> str:
    return f"~{clock(estimate.seconds)}" + ("" if estimate.measured else " ?")


def report_command(run_dir: str) -> int:
    """Rebuilds the tables of a run folder from its cell records."""
    path = Path(run_dir)
    if not (path / "cells").is_dir():
        raise UsageError(
            f"{run_dir!r} is not a run folder (no cells/ inside); pass the --output of a run"
        )
    finish_late_fusion(path)
    config = (
        yaml.safe_load((path / "config.yaml").read_text())
        if (path / "config.yaml").is_file()
        else {}
    )
    if config.get("profile", True):
        print_notes(profile_run(path))
    tables = build_tables(path)
    report = write_report(path, tables)
    print_leaderboard(tables["leaderboard"])
    say(f"tables and {report.name} written to {path}")
    return 0


def predict_command(
    target: str, paths: list[str], *, top_k: int, csv: str | None, caption: str | None
) -> int:
    """Prints file, top-k labels and probabilities; unreadable files are reported and skipped.

    Not one readable image is a UsageError from `predict_files` (one line on stderr, exit 2).
    """
    from benchmark.inference.predict import load_saved_model, predict_files

    saved = load_saved_model(target)
    say(f"model: {saved.path} ({saved.info.cell_id}; classes {', '.join(saved.info.class_names)})")
    table, problems = predict_files(saved, paths, top_k=top_k, caption=caption)
    say(
        tabulate(
            table.values.tolist(), headers=list(table.columns), tablefmt="github", floatfmt=".4f"
        )
    )
    for problem in problems:
        say(f"skipped unreadable file {problem}")
    if csv:
        table.to_csv(csv, index=False)
        say(f"predictions written to {csv}")
    return 0
