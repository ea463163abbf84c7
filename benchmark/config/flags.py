"""The command-line flags that define a run: one definition every training subcommand shares.

Every flag's destination is a `RunConfig` field (a test checks it) and every default is None, so a
flag overrides a preset or config file only when given. Choices come from `CHOICES`, the same table
`RunConfig.validate` checks. This module imports neither TensorFlow nor the models, so `--help`
and flag errors answer at once.
"""

from __future__ import annotations

import argparse

from benchmark.config.choices import CHOICES


def csv_list(kind):
    """argparse type: a comma list of `kind` values.

    An empty item (`0,,1`, a trailing comma) is refused rather than dropped: it is a typo more
    often than not, and the value the user meant to put there would silently be missing.
    """

    def parse(text: str):
        parts = [part.strip() for part in text.split(",")]
        if "" in parts:
            raise argparse.ArgumentTypeError(
                f"{text!r} has an empty item (item {parts.index('') + 1}); give a comma list "
                f"of {kind.__name__} values without empty items"
            )
        try:
            return [kind(part) for part in parts]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a comma list of {kind.__name__} values"
            ) from None

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
    before = len(parser._actions)
    grid = parser.add_argument_group("grid")
    grid.add_argument(
        "--models", type=csv_list(str), help="comma list of registry names or wildcards, or 'all'"
    )
    grid.add_argument(
        "--alphas",
        type=csv_list(float),
        help="class-weight damping values (default 0,0.2,0.5,0.8,1)",
    )
    grid.add_argument("--seeds", type=csv_list(int), help="training seeds (default 0)")
    grid.add_argument(
        "--preset", help="named configuration shipped with the suite (smoke, full, ...)"
    )
    grid.add_argument("--config", help="YAML or JSON file with the same keys as the flags")
    data = parser.add_argument_group("data")
    data.add_argument(
        "--data",
        action="append",
        help="class-folder root, pre-split root or CSV manifest (default: embedded sample); "
        "repeat it, or give a sources YAML, to merge several sources (docs/sources.md)",
    )
    data.add_argument(
        "--split", type=csv_list(float), help="train,val,test ratios (default 0.7,0.15,0.15)"
    )
    data.add_argument("--split-seed", type=int, help="seed of the split (default 0)")
    data.add_argument("--split-file", help="reuse the splits.csv of another run")
    data.add_argument(
        "--folds",
        type=int,
        metavar="K",
        help="K-fold cross-validation: every cell once per fold, the test folds partition the data "
        "(default off)",
    )
    data.add_argument(
        "--skip-corrupt",
        action="store_true",
        default=None,
        help="skip unreadable images, listing them",
    )
    train = parser.add_argument_group("training")
    train.add_argument("--weights", help="imagenet (default), none, or a backbone weights file")
    train.add_argument(
        "--image-size", type=int, help="input side in pixels (default: each model's own)"
    )
    train.add_argument("--batch-size", type=int)
    train.add_argument("--initial-epochs", type=int, help="phase 1 (head) epoch budget")
    train.add_argument("--fine-tune-epochs", type=int, help="phase 2 (fine-tune) epoch budget")
    train.add_argument("--initial-lr", type=float)
    train.add_argument("--fine-tune-lr", type=float)
    train.add_argument(
        "--fine-tune-layers",
        type=_fine_tune_layers,
        help="top backbone layers to unfreeze, or 'all'",
    )
    train.add_argument("--weight-decay", type=float)
    train.add_argument("--dropout", type=float)
    train.add_argument("--label-smoothing", type=float)
    train.add_argument("--patience", type=int, help="early-stopping patience in epochs")
    train.add_argument("--no-augment", dest="augment", action="store_false", default=None)
    train.add_argument("--augment-strength", type=float)
    train.add_argument(
        "--augment-policy",
        choices=CHOICES["augment_policy"],
        help="basic (affine and colour, default), or Keras' RandAugment or AugMix in their place",
    )
    train.add_argument(
        "--random-erasing",
        type=float,
        metavar="P",
        help="erase a noise-filled rectangle of each training image with probability P "
        "(default 0: off)",
    )
    train.add_argument(
        "--mixup",
        type=float,
        metavar="ALPHA",
        help="MixUp with Beta(ALPHA, ALPHA): mixes images, labels and class weights; phase 1 and "
        "2 run online (default 0: off)",
    )
    train.add_argument(
        "--cutmix",
        type=float,
        metavar="ALPHA",
        help="CutMix with Beta(ALPHA, ALPHA); with --mixup each batch uses one of the two "
        "(default 0: off)",
    )
    train.add_argument(
        "--progressive-sizes",
        type=csv_list(int),
        metavar="S1,S2",
        help="from-scratch models: train at these smaller sides first, then at --image-size, "
        "each for an equal share of the epochs (default off)",
    )
    train.add_argument(
        "--ema",
        action="store_true",
        default=None,
        help="average the weights (AdamW's exponential moving average); validate, keep and "
        "evaluate the average",
    )
    train.add_argument(
        "--ema-momentum", type=float, help="per-step momentum of the weight average (default 0.99)"
    )
    train.add_argument(
        "--tta",
        type=int,
        metavar="N",
        help="average the softmax over N fixed test-time views (flip, crops) for val and test; "
        "0 = off (default)",
    )
    train.add_argument(
        "--head-features",
        choices=CHOICES["head_features"],
        help="phase 1 on stored backbone features (auto: cached when augmentation is off)",
    )
    train.add_argument(
        "--fine-tune-features",
        choices=CHOICES["fine_tune_features"],
        help="phase 2 on stored activations at the fine-tune cut "
        "(auto: the bank where it is exact)",
    )
    train.add_argument(
        "--fine-tune-bank-limit",
        type=float,
        metavar="MIB",
        help="largest fine-tune bank, disk or one epoch in memory (default 4096); "
        "a bigger one runs online",
    )
    text = parser.add_argument_group("text and fusion models")
    text.add_argument(
        "--text-encoder", help="keras-hub preset name, preset folder or Hugging Face folder"
    )
    text.add_argument("--sequence-length", type=int, help="caption tokens (default 32)")
    text.add_argument(
        "--text-fine-tune-layers",
        type=int,
        help="top transformer layers unfrozen in phase 2 (default 2)",
    )
    text.add_argument("--text-pooling", choices=CHOICES["text_pooling"])
    text.add_argument("--fusion-units", type=int, help="width of each fusion branch (default 512)")
    text.add_argument("--fusion-dropout", type=float)
    device = parser.add_argument_group("devices and outputs")
    device.add_argument("--precision", choices=CHOICES["precision"])
    device.add_argument(
        "--strategy", choices=CHOICES["strategy"], help="multi-GPU MirroredStrategy"
    )
    device.add_argument("--save-models", choices=CHOICES["save_models"])
    device.add_argument(
        "--no-profile",
        dest="profile",
        action="store_false",
        default=None,
        help="skip the deployment-cost figures",
    )
    device.add_argument(
        "--robustness",
        choices=CHOICES["robustness"],
        help="score each trained image model on corrupted test images (default on; robustness.csv)",
    )
    device.add_argument(
        "--isolate-cells",
        choices=CHOICES["isolate_cells"],
        help="train each cell in a child process, so memory cannot grow over a long grid "
        "(auto: when 10 or more cells are to train)",
    )
    track = parser.add_argument_group("experiment tracking")
    track.add_argument(
        "--mlflow",
        nargs="?",
        const=True,
        metavar="URI",
        help="log every cell as an MLflow run: to sqlite:///RUN_DIR/mlflow.db, "
        "or to URI (http://host:5000, sqlite:///file.db, a folder)",
    )
    track.add_argument(
        "--mlflow-experiment", help="MLflow experiment name (default: the run folder's name)"
    )
    track.add_argument(
        "--tensorboard",
        action="store_true",
        default=None,
        help="Keras TensorBoard logs per cell in RUN_DIR/tensorboard/<cell>",
    )
    for action in parser._actions[before:]:
        action.grid_flag = action.dest not in (
            "preset",
            "config",
        )  # those two choose files, not keys


def grid_keys(parser: argparse.ArgumentParser) -> list[str]:
    """The `RunConfig` keys the grid flags of `parser` set (their argparse destinations)."""
    return [action.dest for action in parser._actions if getattr(action, "grid_flag", False)]


def add_run_flags(
    parser: argparse.ArgumentParser, *, output_help: str, output_required: bool = False
) -> None:
    """The flags every subcommand that trains shares (run, slurm, tune).

    Where, resume rules, how much it says.
    """
    run = parser.add_argument_group("run")
    run.add_argument("--output", required=output_required, help=output_help)
    run.add_argument(
        "--force",
        action="store_true",
        help="continue a folder whose configuration changed "
        "(cells trained under other settings are trained again)",
    )
    run.add_argument("--quiet", action="store_true", help="no per-epoch progress (CI logs)")
    add_verbose_flag(run)


def add_verbose_flag(parser) -> None:
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="show TensorFlow's start-up logs and library warnings (hidden by default)",
    )
