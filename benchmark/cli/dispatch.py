"""From a subcommand's flags to the part of `benchmark/` that does it: parse, check the
configuration (no TensorFlow yet), then start TensorFlow and delegate. `main` is
`run_benchmark.py`'s whole body: it picks the subcommand and turns a user error into one line on
stderr and exit status 2."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

from benchmark.cli.folder_parsers import (
    build_evaluate_parser,
    build_explain_parser,
    build_fetch_parser,
    build_predict_parser,
    build_report_parser,
    build_robustness_parser,
    build_serve_parser,
)
from benchmark.cli.grid_parsers import (
    build_adapt_parser,
    build_run_parser,
    build_slurm_parser,
    build_tune_parser,
)
from benchmark.config.flags import grid_keys
from benchmark.output import refuse, to_stderr


def start(args) -> list[str]:
    """After the flags parsed: import TensorFlow (quietly unless --verbose); returns the visible
    GPUs."""
    from benchmark.quiet import quiet_startup

    gpus = quiet_startup(verbose=args.verbose)
    if gpus:
        to_stderr(f"device: {len(gpus)} GPU(s) visible ({', '.join(gpus)})")
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
    parser = build_run_parser(SUBCOMMANDS)
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

    return robustness_command(
        args.run_dir,
        force=args.force,
        per_class=args.per_class,
        adapt_bn=args.adapt_bn,
        tta=args.tta,
    )


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
    weighting = adapt_weighting(
        args.curve, args.weighting, args.target_weight, args.target_share, args.align_features
    )
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


@dataclass(frozen=True)
class Subcommand:
    """A subcommand's parser (scripts/gen_docs.py documents its flags) and what runs it."""

    build_parser: Callable[[], argparse.ArgumentParser]
    handle: Callable[[list[str]], int]


# The subcommands, in the order `--help` lists them: dispatch, help and the flag reference all read
# this one mapping.
SUBCOMMANDS: dict[str, Subcommand] = {
    "run": Subcommand(build_run_parser, cmd_run),
    "report": Subcommand(build_report_parser, cmd_report),
    "predict": Subcommand(build_predict_parser, cmd_predict),
    "evaluate": Subcommand(build_evaluate_parser, cmd_evaluate),
    "robustness": Subcommand(build_robustness_parser, cmd_robustness),
    "explain": Subcommand(build_explain_parser, cmd_explain),
    "serve": Subcommand(build_serve_parser, cmd_serve),
    "fetch-weights": Subcommand(build_fetch_parser, cmd_fetch_weights),
    "slurm": Subcommand(build_slurm_parser, cmd_slurm),
    "tune": Subcommand(build_tune_parser, cmd_tune),
    "adapt": Subcommand(build_adapt_parser, cmd_adapt),
}


def main(argv: list[str] | None = None) -> int:
    """Runs the subcommand named first in `argv` (default `run`); returns the exit status."""
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
        return SUBCOMMANDS[command].handle(argv)
    except KeyboardInterrupt:
        refuse("interrupted; finished cells are kept, re-run the same command to resume")
        return 130
    except Exception as err:  # imported only now: parsing a flag must not wait for TensorFlow
        from benchmark.errors import USER_ERRORS
        from benchmark.io import is_disk_full

        if isinstance(err, USER_ERRORS):
            refuse(str(err))
            return 2
        if is_disk_full(err):  # the tables or report, after the cells: their records are kept
            refuse(f"{err}; free space and run the same command again")
            return 2
        raise
