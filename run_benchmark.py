#!/usr/bin/env python
"""Garbage-classification transfer-learning benchmark: the command line.

    python run_benchmark.py --preset smoke            # offline first run, minutes on a laptop
    python run_benchmark.py --models 'mobilenet*' --alphas 0,1
    python run_benchmark.py report RUN_DIR            # rebuild the tables and report of a run
    python run_benchmark.py tune --model simple_cnn --output DIR   # KerasTuner search

This file only parses flags and delegates to `benchmark/`; see README.md for every flag.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

SUBCOMMANDS = ("run", "report", "predict", "explain", "fetch-weights", "slurm", "tune")


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line on stderr and exit status 2 (no usage dump)."""

    def error(self, message: str) -> None:
        self.exit(2, f"run_benchmark: {message} (see --help)\n")


def _csv(kind):
    def parse(text: str):
        try:
            return [kind(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a comma list of {kind.__name__} values") from None

    return parse


def _fine_tune_layers(text: str):
    if text == "all":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number or 'all'") from None


def add_grid_flags(parser: argparse.ArgumentParser) -> None:
    """Flags that define a run; every default is None so presets and config files can fill them."""
    grid = parser.add_argument_group("grid")
    grid.add_argument("--models", type=_csv(str), help="comma list of registry names or wildcards, or 'all'")
    grid.add_argument("--alphas", type=_csv(float), help="class-weight damping values (default 0,0.2,0.5,0.8,1)")
    grid.add_argument("--seeds", type=_csv(int), help="training seeds (default 0)")
    grid.add_argument("--preset", help="named configuration shipped with the suite (smoke, full, ...)")
    grid.add_argument("--config", help="YAML or JSON file with the same keys as the flags")
    data = parser.add_argument_group("data")
    data.add_argument("--data", help="class-folder root, pre-split root or CSV manifest (default: embedded sample)")
    data.add_argument("--split", type=_csv(float), help="train,val,test ratios (default 0.7,0.15,0.15)")
    data.add_argument("--split-seed", type=int, help="seed of the split (default 0)")
    data.add_argument("--split-file", help="reuse the splits.csv of another run")
    data.add_argument("--skip-corrupt", action="store_true", default=None, help="skip unreadable images, listing them")
    train = parser.add_argument_group("training")
    train.add_argument("--weights", help="imagenet (default), none, or a backbone weights file")
    train.add_argument("--image-size", type=int, help="input side in pixels (default: each model's own)")
    train.add_argument("--batch-size", type=int)
    train.add_argument("--initial-epochs", type=int, help="phase 1 (head) epoch budget")
    train.add_argument("--fine-tune-epochs", type=int, help="phase 2 (fine-tune) epoch budget")
    train.add_argument("--initial-lr", type=float)
    train.add_argument("--fine-tune-lr", type=float)
    train.add_argument("--fine-tune-layers", type=_fine_tune_layers, help="top backbone layers to unfreeze, or 'all'")
    train.add_argument("--weight-decay", type=float)
    train.add_argument("--dropout", type=float)
    train.add_argument("--label-smoothing", type=float)
    train.add_argument("--patience", type=int, help="early-stopping patience in epochs")
    train.add_argument("--no-augment", dest="augment", action="store_false", default=None)
    train.add_argument("--augment-strength", type=float)
    train.add_argument("--head-features", choices=("auto", "cached", "online"),
                       help="phase 1 on stored backbone features (auto: cached when augmentation is off)")
    text = parser.add_argument_group("text and fusion models")
    text.add_argument("--text-encoder", help="keras-hub preset name, preset folder or Hugging Face folder")
    text.add_argument("--sequence-length", type=int, help="caption tokens (default 32)")
    text.add_argument("--text-fine-tune-layers", type=int, help="top transformer layers unfrozen in phase 2 (default 2)")
    text.add_argument("--text-pooling", choices=("cls", "mean"))
    text.add_argument("--fusion-units", type=int, help="width of each fusion branch (default 512)")
    text.add_argument("--fusion-dropout", type=float)
    device = parser.add_argument_group("devices and outputs")
    device.add_argument("--precision", choices=("auto", "float32", "mixed_float16", "mixed_bfloat16"))
    device.add_argument("--strategy", choices=("auto", "mirrored", "none"), help="multi-GPU MirroredStrategy")
    device.add_argument("--save-models", choices=("best", "all", "none"))
    device.add_argument("--no-profile", dest="profile", action="store_false", default=None,
                        help="skip the deployment-cost figures")


GRID_KEYS = (
    "models", "alphas", "seeds", "data", "split", "split_seed", "split_file", "skip_corrupt", "weights", "image_size",
    "batch_size", "initial_epochs", "fine_tune_epochs", "initial_lr", "fine_tune_lr", "fine_tune_layers",
    "weight_decay", "dropout", "label_smoothing", "patience", "augment", "augment_strength", "save_models",
    "head_features", "text_encoder", "sequence_length", "text_fine_tune_layers", "text_pooling", "fusion_units",
    "fusion_dropout", "precision", "strategy", "profile",
)


def build_run_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="run_benchmark.py", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter,
                           epilog=f"subcommands: {', '.join(SUBCOMMANDS)} (run '<subcommand> --help')")
    add_grid_flags(parser)
    run = parser.add_argument_group("run")
    run.add_argument("--output", help="run folder (default results/<timestamp>); reusing one resumes it")
    run.add_argument("--force", action="store_true", help="continue a run folder whose configuration changed")
    run.add_argument("--cell", type=int, help="run only grid cell I (0-based, as --dry-run lists)")
    run.add_argument("--dry-run", action="store_true", help="print the grid and dataset summary, train nothing")
    run.add_argument("--list-models", action="store_true", help="print the model registry and exit")
    run.add_argument("--quiet", action="store_true", help="no per-epoch progress (CI logs)")
    return parser


def build_report_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="run_benchmark.py report", description="Rebuild the tables and report of a run folder.")
    parser.add_argument("run_dir")
    return parser


def build_predict_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="run_benchmark.py predict",
                           description="Classify images with the best model of a run, or with a saved MODEL.keras.")
    parser.add_argument("model", help="run folder (its best cell) or a saved .keras file")
    parser.add_argument("paths", nargs="+", help="image files or folders")
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--csv", help="also write the predictions to this CSV file")
    parser.add_argument("--caption", help="caption for text and fusion models (default: from each file name)")
    return parser


def build_explain_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="run_benchmark.py explain",
                           description="Grad-CAM heatmaps: where the best model of a run, or a saved MODEL.keras, looked.")
    parser.add_argument("model", help="run folder (its best cell) or a saved .keras file")
    parser.add_argument("paths", nargs="+", help="image files or folders")
    parser.add_argument("--out", help="folder for the PNGs, one per image (default: explanations)")
    parser.add_argument("--layer", help="layer to explain at, also inside a nested backbone (default: the last feature map)")
    return parser


def build_fetch_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="run_benchmark.py fetch-weights",
                           description="Download ImageNet weights and text encoders into the caches (on a connected machine).")
    parser.add_argument("--models", type=_csv(str), default=[], help="comma list of registry names or wildcards")
    parser.add_argument("--text-encoder", help="text encoder preset to fetch as well")
    return parser


def build_slurm_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="run_benchmark.py slurm",
                           description="Write (and with --submit, submit) the grid as a Slurm job array plus a merge job.")
    add_grid_flags(parser)
    run = parser.add_argument_group("run")
    run.add_argument("--output", help="run folder on a file system the compute nodes share (required)")
    run.add_argument("--force", action="store_true", help="continue a run folder whose configuration changed")
    slurm = parser.add_argument_group("slurm")
    slurm.add_argument("--partition")
    slurm.add_argument("--account")
    slurm.add_argument("--gpus-per-task", type=int)
    slurm.add_argument("--cpus-per-task", type=int)
    slurm.add_argument("--mem", help="memory per task, e.g. 16G")
    slurm.add_argument("--time", help="time limit per task (HH:MM:SS or D-HH:MM:SS); tasks requeue before it")
    slurm.add_argument("--max-parallel", type=int, help="at most this many array tasks at once")
    slurm.add_argument("--sbatch-arg", dest="sbatch_args", action="append", default=[],
                       help="extra sbatch option for both jobs, e.g. --sbatch-arg=--qos=high (repeatable)")
    slurm.add_argument("--submit", action="store_true", help="submit with sbatch (default: only write the scripts)")
    slurm.add_argument("--wait", action="store_true", help="with --submit: wait for both jobs and report failed cells")
    return parser


def build_tune_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="run_benchmark.py tune",
                           description="Search one model's hyperparameters with KerasTuner, each trial trained by the "
                                       "benchmark's two-phase recipe and scored on the validation split (never test).")
    add_grid_flags(parser)
    tune = parser.add_argument_group("tune")
    tune.add_argument("--model", required=True, help="the one registry model to tune (--models is ignored)")
    tune.add_argument("--tuner", choices=("random", "bayesian", "hyperband"), default="random",
                      help="search strategy (default random: independent trials keep the importance estimates unbiased)")
    tune.add_argument("--max-trials", type=int, default=20, help="trials in all, finished ones included (default 20)")
    tune.add_argument("--max-epochs", type=int,
                      help="cap on each phase's epochs during the search (hyperband: its largest budget; required)")
    tune.add_argument("--objective", choices=("val_accuracy", "val_loss", "val_macro_f1"), default="val_accuracy")
    tune.add_argument("--space", help="search-space YAML/JSON "
                                      "(default: benchmark/tune_spaces/simple_cnn.yaml or transfer.yaml)")
    tune.add_argument("--output", required=True, help="tune folder; re-running the same command resumes it")
    tune.add_argument("--force", action="store_true", help="start afresh in a tune folder whose search request changed")
    return parser


def cmd_run(argv: list[str]) -> int:
    args = build_run_parser().parse_args(argv)
    from benchmark import cli_commands

    if args.list_models:
        return cli_commands.list_models_command()
    overrides = {key: getattr(args, key) for key in GRID_KEYS}
    return cli_commands.run_command(
        preset=args.preset, config_file=args.config, overrides=overrides, output=args.output, force=args.force,
        cell=args.cell, dry_run=args.dry_run, quiet=args.quiet,
    )


def cmd_report(argv: list[str]) -> int:
    args = build_report_parser().parse_args(argv)
    from benchmark import cli_commands

    return cli_commands.report_command(args.run_dir)


def cmd_predict(argv: list[str]) -> int:
    args = build_predict_parser().parse_args(argv)
    from benchmark import cli_commands

    return cli_commands.predict_command(args.model, args.paths, top_k=args.top_k, csv=args.csv, caption=args.caption)


def cmd_explain(argv: list[str]) -> int:
    args = build_explain_parser().parse_args(argv)
    from benchmark.explain import explain_command

    return explain_command(args.model, args.paths, args.out, args.layer)


def cmd_fetch_weights(argv: list[str]) -> int:
    args = build_fetch_parser().parse_args(argv)
    from benchmark.fetch_weights import fetch_weights

    return fetch_weights(args.models, args.text_encoder)


def cmd_slurm(argv: list[str]) -> int:
    args = build_slurm_parser().parse_args(argv)
    from benchmark.config import resolve_config
    from benchmark.slurm import SlurmOptions, slurm_command

    config = resolve_config(args.preset, args.config, {key: getattr(args, key) for key in GRID_KEYS})
    options = SlurmOptions(partition=args.partition, gpus_per_task=args.gpus_per_task, cpus_per_task=args.cpus_per_task,
                           mem=args.mem, time=args.time, max_parallel=args.max_parallel, account=args.account,
                           sbatch_args=args.sbatch_args)
    return slurm_command(config, args.output, options, submit=args.submit, wait=args.wait, force=args.force)


def cmd_tune(argv: list[str]) -> int:
    args = build_tune_parser().parse_args(argv)
    from benchmark.config import resolve_config
    from benchmark.tune import TuneOptions, tune_command

    config = resolve_config(args.preset, args.config, {key: getattr(args, key) for key in GRID_KEYS})
    options = TuneOptions(model=args.model, tuner=args.tuner, max_trials=args.max_trials, max_epochs=args.max_epochs,
                          objective=args.objective, space=args.space)
    return tune_command(config, options, args.output, args.force)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # 1.2-2x faster on CPU here; the user's setting wins
    command = argv[0] if argv and argv[0] in SUBCOMMANDS else "run"
    if argv and argv[0] in SUBCOMMANDS:
        argv = argv[1:]
    handlers = {"run": cmd_run, "report": cmd_report, "predict": cmd_predict, "explain": cmd_explain,
                "fetch-weights": cmd_fetch_weights, "slurm": cmd_slurm, "tune": cmd_tune}
    logging.basicConfig(format="warning: %(message)s", level=logging.WARNING)  # the data pipeline's warnings
    from benchmark.errors import USER_ERRORS

    try:
        return handlers[command](argv)
    except USER_ERRORS as err:
        print(f"run_benchmark: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("run_benchmark: interrupted; finished cells are kept, re-run the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
