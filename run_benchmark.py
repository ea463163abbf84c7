#!/usr/bin/env python
"""Garbage-classification transfer-learning benchmark: the command line.

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

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable

from benchmark.config.flags import (
    add_grid_flags,
    add_run_flags,
    add_verbose_flag,
    csv_list,
    grid_keys,
)


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line on stderr and exit status 2 (no usage dump)."""

    def error(self, message: str) -> None:
        self.exit(2, f"run_benchmark: {message} (see --help)\n")


def build_run_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="run_benchmark.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"subcommands: {', '.join(SUBCOMMANDS)} (run '<subcommand> --help')",
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


def build_report_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="run_benchmark.py report", description="Rebuild the tables and report of a run folder."
    )
    parser.add_argument("run_dir")
    add_verbose_flag(parser)
    return parser


def build_predict_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="run_benchmark.py predict",
        description="Classify images with the best model of a run, or with a saved MODEL.keras.",
    )
    parser.add_argument("model", help="run folder (its best cell) or a saved .keras file")
    parser.add_argument("paths", nargs="+", help="image files or folders")
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--csv", help="also write the predictions to this CSV file")
    parser.add_argument(
        "--caption", help="caption for text and fusion models (default: from each file name)"
    )
    add_verbose_flag(parser)
    return parser


def build_evaluate_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="run_benchmark.py evaluate",
        description="Score a finished run's saved models on another labelled image set (nothing of "
        "it is trained on): accuracy, macro-F1, per-class recall, confusion matrix, "
        "bootstrap intervals and the drop from the in-domain test accuracy.",
    )
    parser.add_argument("run_dir", help="run folder with saved models (--save-models best or all)")
    parser.add_argument(
        "data", help="class-folder root, pre-split root (all splits pooled) or CSV manifest"
    )
    parser.add_argument(
        "--label-map",
        help="YAML or JSON: each DATA class -> a run class, a list of them (any counts "
        "as right), or null (left out); default: match class names, ignoring case",
    )
    parser.add_argument(
        "--cells",
        choices=("best", "all"),
        default="best",
        help="best (default): each model's best cell by validation; all: every cell with a "
        "saved model",
    )
    parser.add_argument(
        "--output",
        help="folder for cross_dataset.csv/.md (default: the run folder, whose report.md "
        "gains the section)",
    )
    parser.add_argument(
        "--skip-corrupt", action="store_true", help="skip unreadable images of DATA, listing them"
    )
    parser.add_argument(
        "--adapt-bn",
        action="store_true",
        help="also score each model after re-estimating its BatchNorm statistics on DATA's "
        "images (no labels, no gradient step; the saved file is not changed)",
    )
    add_verbose_flag(parser)
    return parser


def build_robustness_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="run_benchmark.py robustness",
        description="Score a finished run's saved image models on their test images under common "
        "corruptions at severities 1-5 (robustness.csv; the report gains the section).",
    )
    parser.add_argument("run_dir", help="run folder with saved models (--save-models best or all)")
    parser.add_argument(
        "--force", action="store_true", help="score cells already in robustness.csv again"
    )
    parser.add_argument(
        "--per-class", type=int, help="test images per class scored (default 8, as after training)"
    )
    add_verbose_flag(parser)
    return parser


def build_explain_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="run_benchmark.py explain",
        description="Grad-CAM heatmaps: where the best model of a run, or a saved MODEL.keras, "
        "looked.",
    )
    parser.add_argument("model", help="run folder (its best cell) or a saved .keras file")
    parser.add_argument("paths", nargs="+", help="image files or folders")
    parser.add_argument("--out", help="folder for the PNGs, one per image (default: explanations)")
    parser.add_argument(
        "--layer",
        help="layer to explain at, also inside a nested backbone (default: the last feature map)",
    )
    add_verbose_flag(parser)
    return parser


def build_serve_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="run_benchmark.py serve",
        description="A local web page over a finished run: classify photos, see Grad-CAM, browse "
        "its results (docs/app.md).",
    )
    parser.add_argument(
        "run_dir", nargs="?", help="finished run folder (default: newest in results/)"
    )
    parser.add_argument("--port", type=int, default=8000, help="default 8000; 0 picks a free one")
    parser.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (this machine only)")
    add_verbose_flag(parser)
    return parser


def build_fetch_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="run_benchmark.py fetch-weights",
        description="Download ImageNet weights and text encoders into the caches "
        "(on a connected machine).",
    )
    parser.add_argument(
        "--models", type=csv_list(str), default=[], help="comma list of registry names or wildcards"
    )
    parser.add_argument("--text-encoder", help="text encoder preset to fetch as well")
    add_verbose_flag(parser)
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
    return parser


def start(args) -> list[str]:
    """After the flags parsed: import TensorFlow (quietly unless --verbose); returns the visible
    GPUs."""
    from benchmark.quiet import quiet_startup

    gpus = quiet_startup(verbose=args.verbose)
    if gpus:
        print(f"device: {len(gpus)} GPU(s) visible ({', '.join(gpus)})", file=sys.stderr)
    return gpus


def checked_config(args, parser, models: list[str] | None = None):
    """The run configuration of the flags (defaults < preset < config file < flags), refused in one
    line when a value, the grid it makes (`models` when given) or `--output` cannot train.

    Imports no TensorFlow, so bad input answers within a second (a test checks it).
    """
    import dataclasses
    from pathlib import Path

    from benchmark.config.run_config import resolve_config
    from benchmark.run.preflight import check_inputs, check_output_folder

    overrides = {key: getattr(args, key) for key in grid_keys(parser)}
    config = resolve_config(args.preset, args.config, overrides)
    check_inputs(config if models is None else dataclasses.replace(config, models=models))
    if args.output:
        check_output_folder(Path(args.output), tensorboard=config.tensorboard)
    return config


def cmd_run(argv: list[str]) -> int:
    parser = build_run_parser()
    args = parser.parse_args(argv)
    if args.list_models:
        from benchmark.listing import list_models_command

        return list_models_command()
    config = checked_config(args, parser)
    start(args)
    from benchmark import commands

    return commands.run_command(
        config,
        output=args.output,
        force=args.force,
        cell=args.cell,
        dry_run=args.dry_run,
        quiet=args.quiet,
    )


def cmd_report(argv: list[str]) -> int:
    args = build_report_parser().parse_args(argv)
    start(args)
    from benchmark import commands

    return commands.report_command(args.run_dir)


def cmd_predict(argv: list[str]) -> int:
    args = build_predict_parser().parse_args(argv)
    start(args)
    from benchmark import commands

    return commands.predict_command(
        args.model, args.paths, top_k=args.top_k, csv=args.csv, caption=args.caption
    )


def cmd_evaluate(argv: list[str]) -> int:
    args = build_evaluate_parser().parse_args(argv)
    start(args)
    from benchmark.cross_dataset.evaluate import evaluate_command

    return evaluate_command(
        args.run_dir,
        args.data,
        label_map=args.label_map,
        cells=args.cells,
        output=args.output,
        skip_corrupt=args.skip_corrupt,
        adapt_bn=args.adapt_bn,
    )


def cmd_robustness(argv: list[str]) -> int:
    args = build_robustness_parser().parse_args(argv)
    start(args)
    from benchmark.cross_dataset.corrupted import robustness_command

    return robustness_command(args.run_dir, force=args.force, per_class=args.per_class)


def cmd_explain(argv: list[str]) -> int:
    args = build_explain_parser().parse_args(argv)
    start(args)
    from benchmark.inference.explain import explain_command

    return explain_command(args.model, args.paths, args.out, args.layer)


def cmd_serve(argv: list[str]) -> int:
    args = build_serve_parser().parse_args(argv)
    from benchmark.app.serve import prepare, serve_command

    ready = prepare(args.run_dir, args.host, args.port)  # refused before TensorFlow loads
    start(args)
    return serve_command(ready)


def cmd_fetch_weights(argv: list[str]) -> int:
    args = build_fetch_parser().parse_args(argv)
    start(args)
    from benchmark.run.fetch_weights import fetch_weights

    return fetch_weights(args.models, args.text_encoder)


def cmd_slurm(argv: list[str]) -> int:
    parser = build_slurm_parser()
    args = parser.parse_args(argv)
    config = checked_config(args, parser)
    start(args)
    from benchmark.run.slurm import SlurmOptions, slurm_command

    options = SlurmOptions(
        partition=args.partition,
        gpus_per_task=args.gpus_per_task,
        cpus_per_task=args.cpus_per_task,
        mem=args.mem,
        time=args.time,
        max_parallel=args.max_parallel,
        account=args.account,
        sbatch_args=args.sbatch_args,
    )
    return slurm_command(
        config, args.output, options, submit=args.submit, wait=args.wait, force=args.force
    )


def cmd_tune(argv: list[str]) -> int:
    parser = build_tune_parser()
    args = parser.parse_args(argv)
    config = checked_config(args, parser, models=[args.model])  # tune trains --model, not --models
    start(args)
    from benchmark.tune.search import TuneOptions, tune_command

    options = TuneOptions(
        model=args.model,
        tuner=args.tuner,
        max_trials=args.max_trials,
        max_epochs=args.max_epochs,
        objective=args.objective,
        space=args.space,
    )
    return tune_command(config, options, args.output, args.force, quiet=args.quiet)


def cmd_adapt(argv: list[str]) -> int:
    parser = build_adapt_parser()
    args = parser.parse_args(argv)
    from benchmark.adapt.plan import (
        adapt_weighting,
        check_target_weight,
        parse_shots,
        plan_adaptation,
    )
    from benchmark.errors import UsageError

    shots = parse_shots(args.shots)
    weighting = adapt_weighting(args.curve, args.weighting, args.target_weight, args.target_share)
    target_weight = check_target_weight(1 if args.target_weight is None else args.target_weight)
    config = checked_config(args, parser)
    if not config.data or config.split_file or config.folds is not None:
        raise UsageError(
            "adapt needs --data (the source trained on) and takes no --split-file or --folds: "
            "it makes one split per k"
        )
    if args.curve == "probe":
        from benchmark.adapt.features import probe_plans

        probe_plans(config)  # a grid with no pretrained image model is refused here
    plan = plan_adaptation(
        config.data,
        args.target,
        shots,
        label_map=args.label_map,
        ratios=config.split,
        seed=config.split_seed,
        skip_corrupt=config.skip_corrupt,
        target_weight=target_weight,
    )  # every refusal about the data, before TensorFlow loads and before OUTPUT is written
    start(args)
    from benchmark.adapt.command import adapt_command, probe_curve_command

    if args.curve == "probe":
        return probe_curve_command(config, plan, args.output, weighting)
    return adapt_command(config, plan, args.output, force=args.force, quiet=args.quiet)


# The subcommands, in the order `--help` lists them: dispatch and help both read this one mapping.
SUBCOMMANDS: dict[str, Callable[[list[str]], int]] = {
    "run": cmd_run,
    "report": cmd_report,
    "predict": cmd_predict,
    "evaluate": cmd_evaluate,
    "robustness": cmd_robustness,
    "explain": cmd_explain,
    "serve": cmd_serve,
    "fetch-weights": cmd_fetch_weights,
    "slurm": cmd_slurm,
    "tune": cmd_tune,
    "adapt": cmd_adapt,
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault(
        "TF_ENABLE_ONEDNN_OPTS", "1"
    )  # 1.2-2x faster on CPU here; the user's setting wins
    command = argv[0] if argv and argv[0] in SUBCOMMANDS else "run"
    if argv and argv[0] in SUBCOMMANDS:
        argv = argv[1:]
    logging.basicConfig(
        format="warning: %(message)s", level=logging.WARNING
    )  # the data pipeline's warnings
    try:
        return SUBCOMMANDS[command](argv)
    except KeyboardInterrupt:
        print(
            "run_benchmark: interrupted; finished cells are kept, re-run the same command to "
            "resume",
            file=sys.stderr,
        )
        return 130
    except Exception as err:  # imported only now: parsing a flag must not wait for TensorFlow
        from benchmark.errors import USER_ERRORS
        from benchmark.io import is_disk_full

        if isinstance(err, USER_ERRORS):
            print(f"run_benchmark: {err}", file=sys.stderr)
            return 2
        if is_disk_full(err):  # the tables or report, after the cells: their records are kept
            print(
                f"run_benchmark: {err}; free space and run the same command again", file=sys.stderr
            )
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
