"""Search spaces for `run_benchmark.py tune`, as plain data, and how a trial's values become a
RunConfig.

A space file (YAML, or JSON by its `.json` suffix) maps each hyperparameter name to its range:

    simple_cnn.base_filters: {type: choice, values: [16, 32, 64]}
    simple_cnn.blocks: {type: int, min: 2, max: 6}
    simple_cnn.batch_norm: {type: bool}
    dropout: {type: float, min: 0.0, max: 0.5, step: 0.1}
    initial_lr: {type: float, min: 1.0e-4, max: 1.0e-2, log: true}

`type` is `choice` (`values`: a list of one type, numbers or strings), `int` or `float` (`min`
and `max` inclusive, optional `step`, optional `log: true` for log-uniform sampling) or `bool`.
Write small floats as `1.0e-4`: YAML reads `1e-4` as a string (it is converted anyway).

Names are the recipe's RunConfig keys (`RECIPE_KEYS`), `simple_cnn.<knob>` for every
SimpleCNNConfig field, `alpha` (the trial's class-weight damping), and `head_width` with
`head_blocks`: a head of `head_blocks` dense blocks whose widths halve from `head_width`, so 256
and 2 give the default `head_units: [256, 128]`. Any other name is an error that names it.

Each hyperparameter's default is the base configuration's value (flags, config file, preset),
so building from an empty `HyperParameters()` is the untuned baseline, as in KerasTuner's own
applications. Shipped spaces live in `benchmark/tune/spaces/`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras_tuner

from benchmark.config.data_files import read_data_file
from benchmark.config.run_config import RunConfig
from benchmark.errors import UsageError, first_line
from benchmark.plan import ModelPlan
from benchmark.run.cell_inputs import build_spec
from models import HeadConfig, SimpleCNNConfig

SPACES_DIR = Path(__file__).parent / "spaces"
RECIPE_KEYS = (
    "batch_size",
    "initial_lr",
    "fine_tune_lr",
    "fine_tune_layers",
    "weight_decay",
    "label_smoothing",
    "dropout",
    "augment",
    "augment_strength",
    "lr_schedule",
    "warmup_epochs",
    "patience",
    "image_size",
)
CNN_KEYS = tuple(f"simple_cnn.{f.name}" for f in dataclasses.fields(SimpleCNNConfig))
DERIVED_KEYS = ("alpha", "head_width", "head_blocks")
KNOWN_NAMES = RECIPE_KEYS + DERIVED_KEYS + CNN_KEYS
# simple_cnn has its own dense layer and one training phase, so the shared head and phase 2 mean
# nothing to it.
HEAD_AND_PHASE2_KEYS = ("head_width", "head_blocks", "dropout", "fine_tune_lr", "fine_tune_layers")
RANGE_KEYS = {"min", "max", "step", "log"}
TYPE_KEYS = {"choice": {"values"}, "int": RANGE_KEYS, "float": RANGE_KEYS, "bool": set()}


@dataclass(frozen=True)
class Param:
    """One hyperparameter's range, as read from a space file.

    Args:
        name: a name from `KNOWN_NAMES`.
        type: "choice", "int", "float" or "bool".
        values: the choices (choice only).
        min, max: inclusive bounds (int and float).
        step: optional grid step (a multiplier with `log`).
        log: sample log-uniformly (learning rates, weight decay).
    """

    name: str
    type: str
    values: tuple = ()
    min: float | None = None
    max: float | None = None
    step: float | None = None
    log: bool = False

    @property
    def categorical(self) -> bool:
        """Unordered levels (strings, booleans): summarised by per-level means, not a rank
        correlation.
        """
        return self.type == "bool" or (self.type == "choice" and isinstance(self.values[0], str))

    def probes(self) -> list:
        """Values a check tries: every choice, or both ends of a range."""
        if self.type == "choice":
            return list(self.values)
        return [True, False] if self.type == "bool" else [self.min, self.max]

    def allows(self, value: Any) -> bool:
        if self.type == "bool":
            return isinstance(value, bool)
        if isinstance(value, bool) or value is None:
            return False
        if self.type == "choice":
            return value in self.values
        return isinstance(value, (int, float)) and self.min <= value <= self.max

    def declare(self, hp: keras_tuner.HyperParameters, baseline: Any = None) -> None:
        """Registers the range in `hp`, defaulting to `baseline` where the range holds it."""
        default = baseline if self.allows(baseline) else None
        if self.type == "choice":
            hp.Choice(self.name, list(self.values), default=default)
        elif self.type == "bool":
            hp.Boolean(self.name, default=bool(default))
        else:
            declare = hp.Int if self.type == "int" else hp.Float
            declare(
                self.name,
                self.min,
                self.max,
                step=self.step,
                sampling="log" if self.log else "linear",
                default=default,
            )

    def to_data(self) -> dict[str, Any]:
        """The space-file form (what `tune_request.yaml` stores and compares)."""
        data: dict[str, Any] = {"type": self.type}
        if self.type == "choice":
            data["values"] = list(self.values)
        elif self.type != "bool":
            data.update({"min": self.min, "max": self.max})
            data.update({key: getattr(self, key) for key in ("step", "log") if getattr(self, key)})
        return data


def default_space_path(model: str) -> Path:
    """The shipped space: simple_cnn's own knobs, or the head and recipe of a pretrained model."""
    return SPACES_DIR / ("simple_cnn.yaml" if model == "simple_cnn" else "transfer.yaml")


def load_space(path: str | Path, base: RunConfig, plan: ModelPlan) -> dict[str, Param]:
    """Reads and checks a space file for the model of `plan`; every problem is a UsageError naming
    the file and the entry."""
    space = read_space(path)
    check_space(space, base, plan, str(path))
    return space


def read_space(path: str | Path) -> dict[str, Param]:
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"search space file {str(path)!r} does not exist")
    data = read_data_file(path, "search space")
    if not isinstance(data, dict) or not data:
        raise UsageError(f"search space {str(path)!r} must map hyperparameter names to ranges")
    unknown = sorted(set(data) - set(KNOWN_NAMES))
    if unknown:
        raise UsageError(
            f"search space {str(path)!r} has unknown hyperparameters: {', '.join(unknown)} "
            f"(known: {', '.join(KNOWN_NAMES)})"
        )
    return {name: parse_param(name, spec, str(path)) for name, spec in data.items()}


def parse_param(name: str, spec: Any, source: str) -> Param:
    """One entry of a space file, type-checked by declaring it in a throwaway HyperParameters."""
    where = f"search space {source!r}: {name}"
    if not isinstance(spec, dict) or spec.get("type") not in TYPE_KEYS:
        raise UsageError(f"{where} needs `type: choice`, `int`, `float` or `bool`")
    kind = spec["type"]
    extra = sorted(set(spec) - {"type"} - TYPE_KEYS[kind])
    if extra:
        raise UsageError(f"{where} has keys {', '.join(extra)} that a {kind} does not take")
    try:
        if kind == "choice":
            if not isinstance(spec.get("values"), list) or not spec["values"]:
                raise ValueError("`values` must be a non-empty list")
            param = Param(name, kind, values=tuple(spec["values"]))
        elif kind == "bool":
            param = Param(name, kind)
        else:
            number = int if kind == "int" else float
            step = spec.get("step")
            param = Param(
                name,
                kind,
                min=number(spec["min"]),
                max=number(spec["max"]),
                step=number(step) if step is not None else None,
                log=bool(spec.get("log", False)),
            )
        param.declare(keras_tuner.HyperParameters())
    except KeyError as err:
        raise UsageError(f"{where} needs `{err.args[0]}`") from err
    except (TypeError, ValueError) as err:
        raise UsageError(f"{where} is not a valid {kind}: {first_line(err, limit=300)}") from err
    return param


def check_space(space: dict[str, Param], base: RunConfig, plan: ModelPlan, source: str) -> None:
    """Refuses knobs the model ignores and values the configuration rejects, before any trial
    trains.
    """
    model, scratch = plan.name, plan.kind == "scratch"  # simple_cnn: its own knobs, no head
    ignored = [n for n in space if n in (HEAD_AND_PHASE2_KEYS if scratch else CNN_KEYS)]
    if ignored:
        raise UsageError(
            f"search space {source!r} tunes {', '.join(ignored)}, which {model} does not use"
        )
    build_spec(base, 2)  # the baseline's own simple_cnn knobs and head must be valid first
    for param in space.values():
        for value in param.probes():
            try:
                build_spec(apply_values(base, {param.name: value}), 2)
            except (TypeError, ValueError) as err:  # UsageError is a ValueError
                raise UsageError(
                    f"search space {source!r}: {param.name}={value!r} is not a valid setting "
                    f"({first_line(err, limit=300)})"
                ) from err


def to_hyperparameters(
    space: dict[str, Param], base: RunConfig, plan: ModelPlan
) -> keras_tuner.HyperParameters:
    hp = keras_tuner.HyperParameters()
    for param in space.values():
        param.declare(hp, baseline_value(base, plan, param.name))
    return hp


def baseline_value(base: RunConfig, plan: ModelPlan, name: str) -> Any:
    """The value the base configuration (whose plan of the tuned model is `plan`) gives a
    hyperparameter (None where the mapping has no such value).
    """
    if name == "alpha":
        return base.alphas[0]
    if name == "head_width":
        return base.head_units[0] if base.head_units else None
    if name == "head_blocks":
        return len(base.head_units)
    if name == "fine_tune_layers":
        return plan.fine_tune_layers  # None in the config means the model's own default
    if name == "image_size":
        return plan.image_size
    if name in CNN_KEYS:
        return getattr(base.simple_cnn_config(), name.split(".", 1)[1])
    return getattr(base, name)


def trial_values(values: dict[str, Any]) -> dict[str, Any]:
    """A trial's own values: KerasTuner's bookkeeping (`tuner/epochs`, ...) dropped, float noise of
    steps rounded.
    """
    return {
        name: float(f"{value:.10g}") if isinstance(value, float) else value
        for name, value in values.items()
        if not name.startswith("tuner/")
    }


def apply_values(base: RunConfig, values: dict[str, Any]) -> RunConfig:
    """The base configuration with a trial's values on its RunConfig keys (validated by
    RunConfig)."""
    changes = {name: value for name, value in values.items() if name in RECIPE_KEYS}
    if "alpha" in values:
        changes["alphas"] = [float(values["alpha"])]
    knobs = {name.split(".", 1)[1]: value for name, value in values.items() if name in CNN_KEYS}
    if knobs:
        changes["simple_cnn"] = {**base.simple_cnn, **knobs}
    if "head_width" in values or "head_blocks" in values:
        width = values.get(
            "head_width", base.head_units[0] if base.head_units else HeadConfig().units[0]
        )
        changes["head_units"] = head_units(
            int(width), int(values.get("head_blocks", len(base.head_units)))
        )
    return dataclasses.replace(base, **changes)


def head_units(width: int, blocks: int) -> list[int]:
    """Widths halving from `width` (at least 8), as the default head [256, 128] does."""
    return [max(width // 2**i, 8) for i in range(blocks)]
