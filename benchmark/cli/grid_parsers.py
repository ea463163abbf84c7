"""The parsers of the subcommands that train a grid (run, slurm, tune, adapt): each takes the grid
flags every training subcommand shares (`benchmark.config.flags`) plus its own."""

from __future__ import annotations

import argparse
from collections.abc import Iterable

from benchmark.cli.parsing import OneLineParser
from benchmark.config.flags import add_grid_flags, add_run_flags

# `python run_benchmark.py --help` shows this text above the flags.
RUN_DESCRIPTION = """Garbage-classification transfer-learning benchmark: the command line.

    python run_benchmark.py --preset smoke            # offline first run, minutes on a laptop
    python run_benchmark.py --models 'mobilenet*' --alphas 0,1
    python run_benchmark.py report RUN_DIR            # rebuild the tables and report of a run
    python run_benchmark.py evaluate RUN_DIR DATA --label-map map.yaml  # its models on other photos
    python run_benchmark.py robustness RUN_DIR        # its models on corrupted test photos
    python run_benchmark.py tune --model simple_cnn --output DIR   # KerasTuner search
    python run_benchmark.py serve RUN_DIR             # a local web page over a finished run
    python run_benchmark.py adapt --data SRC --target MINE --output DIR  # labels needed per class

This file only parses flags and delegates to `benchmark/`. Every flag of every subcommand is in
docs/reference/flags.md (generated from these parsers by scripts/gen_docs.py); docs/usage.md
explains them.
"""


def build_run_parser(subcommands: Iterable[str] = ()) -> argparse.ArgumentParser:
    """The default subcommand's parser; `subcommands` are the names its `--help` lists (the
    dispatch passes its own mapping, so help and dispatch cannot disagree)."""
    parser = OneLineParser(
        prog="run_benchmark.py",
        description=RUN_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"subcommands: {', '.join(subcommands)} (run '<subcommand> --help')"
        if subcommands
        else None,
    )
    add_grid_flags(parser)
    add_run_flags(
        parser, output_help="run folder (default results/<timestamp>); reusing one resumes it"
    )
    only = parser.add_argument_group("run only")
    only.add_argument("--cell", type=int, help="run only grid cell I (0-based, as --dry-run lists)")
    only.add_argument(
        "--dry-run", action="store_true", help="print the grid and dataset summary, train nothing"
    )
    only.add_argument(
        "--list-models", action="store_true", help="print the model registry and exit"
    )
    return parser


def build_slurm_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="run_benchmark.py slurm",
        description="Write (and with --submit, submit) the grid as a Slurm job array plus a "
        "merge job.",
    )
    add_grid_flags(parser)
    add_run_flags(
        parser, output_help="run folder on a file system the compute nodes share (required)"
    )
    slurm = parser.add_argument_group("slurm")
    slurm.add_argument("--partition")
    slurm.add_argument("--account")
    slurm.add_argument("--gpus-per-task", type=int)
    slurm.add_argument("--cpus-per-task", type=int)
    slurm.add_argument("--mem", help="memory per task, e.g. 16G")
    slurm.add_argument(
        "--time", help="time limit per task (HH:MM:SS or D-HH:MM:SS); tasks requeue before it"
    )
    slurm.add_argument("--max-parallel", type=int, help="at most this many array tasks at once")
    slurm.add_argument(
        "--sbatch-arg",
        dest="sbatch_args",
        action="append",
        default=[],
        help="extra sbatch option for both jobs, e.g. --sbatch-arg=--qos=high (repeatable)",
    )
    slurm.add_argument(
        "--submit", action="store_true", help="submit with sbatch (default: only write the scripts)"
    )
    slurm.add_argument(
        "--wait",
        action="store_true",
        help="with --submit: wait for both jobs and report failed cells",
    )
    return parser


def build_tune_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="run_benchmark.py tune",
        description="Search one model's hyperparameters with KerasTuner, each trial trained by the "
        "benchmark's two-phase recipe and scored on the validation split (never test).",
    )
    add_grid_flags(parser)
    add_run_flags(
        parser,
        output_required=True,
        output_help="tune folder; re-running the same command resumes it "
        "(--force starts afresh when the search request changed)",
    )
    tune = parser.add_argument_group("tune")
    tune.add_argument(
        "--model", required=True, help="the one registry model to tune (--models is ignored)"
    )
    tune.add_argument(
        "--tuner",
        choices=("random", "bayesian", "hyperband"),
        default="random",
        help="search strategy (default random: independent trials keep the importance estimates "
        "unbiased)",
    )
    tune.add_argument(
        "--max-trials",
        type=int,
        default=20,
        help="trials in all, finished ones included (default 20)",
    )
    tune.add_argument(
        "--max-epochs",
        type=int,
        help="cap on each phase's epochs during the search (hyperband: its largest budget; "
        "required)",
    )
    tune.add_argument(
        "--objective", choices=("val_accuracy", "val_loss", "val_macro_f1"), default="val_accuracy"
    )
    tune.add_argument(
        "--space",
        help="search-space YAML/JSON "
        "(default: benchmark/tune/spaces/simple_cnn.yaml or transfer.yaml)",
    )
    return parser


def build_adapt_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="run_benchmark.py adapt",
        description="The adaptation curve (docs/adaptation.md): train on --data plus k labelled "
        "--target photos per class, for each k of --shots, and score every k on one fixed set "
        "of target test photos.",
    )
    add_grid_flags(parser)
    add_run_flags(
        parser,
        output_required=True,
        output_help="folder for adaptation.csv/.png, features/ (probe) or shots<k>/ run folders "
        "(finetune); reusing one resumes it",
    )
    adapt = parser.add_argument_group("adapt")
    adapt.add_argument(
        "--target",
        required=True,
        help="your photos: class-folder root, pre-split root (splits pooled) or CSV manifest",
    )
    adapt.add_argument(
        "--label-map",
        help="YAML or JSON: each TARGET class -> a source class or null (left out); default: "
        "classes keep their names",
    )
    adapt.add_argument(
        "--shots",
        default="0,5,10,25,50",
        help="labelled target photos per class to train with, a head (probe) or a run (finetune) "
        "each (default 0,5,10,25,50; 0 is the plain cross-dataset score)",
    )
    adapt.add_argument(
        "--curve",
        choices=("probe", "finetune"),
        default="probe",
        help="probe (default): a logistic-regression head on frozen backbone features computed "
        "once for every image, fitted per k (seconds per k); finetune: the whole grid trained "
        "once per k",
    )
    adapt.add_argument(
        "--target-weight",
        type=int,
        help="train on each labelled target photo this many times (copies; the finetune curve's "
        "weighting, default 1; with --curve probe it selects --weighting copies)",
    )
    adapt.add_argument(
        "--weighting",
        choices=("share", "copies"),
        help="--curve probe only: share (default) makes each class's k target photos weigh "
        "--target-share x its source photos; copies weighs each as --target-weight photos",
    )
    adapt.add_argument(
        "--target-share",
        type=float,
        help="--curve probe, --weighting share: the share of a class's source training photos "
        "its k target photos weigh together (default 0.5; never under 1 photo each)",
    )
    adapt.add_argument(
        "--align-features",
        choices=("none", "standardise"),
        help="--curve probe only: standardise standardises each domain's features with its own "
        "mean and spread (the source's training images, the target's unlabelled pool) before "
        "the heads are fitted; none (default) standardises all with the training set's",
    )
    return parser
