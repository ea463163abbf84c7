"""Knobs of the from-scratch baseline CNN, as plain data (the tuner searches over these)."""

from __future__ import annotations

from dataclasses import dataclass, fields

FILTER_STRATEGIES = ("same", "doubling", "halving")
ACTIVATIONS = ("relu", "gelu", "silu", "mish")
# Knob types by annotation (annotations are strings here: `from __future__ import annotations`).
_TYPES = {"int": int, "float": (int, float), "str": str, "bool": bool}


@dataclass(frozen=True)
class SimpleCNNConfig:
    """The baseline's architecture; defaults are the measured TrashNet recipe (docs/results.md).

    The `scratch_trashnet` preset (`benchmarks/scratch_trashnet.py`) trains exactly these defaults
    on the full TrashNet: a 1.05 M-parameter, 5-convolution network, 84 cosine-scheduled epochs
    progressively resized 64 -> 96 -> 128 px in about 27 minutes on 2 CPU cores (docs/results.md has
    the measured accuracy and what each lever gave).

    Args:
        base_filters: filters of the first block (16/32/64 in the prior sweep). Defaults to 32.
        filter_strategy: "same", "doubling" or "halving" across blocks (capped at 256, floored at
            8).
        filter_size: square kernel side, 3 or 5. Defaults to 3.
        blocks: number of conv blocks, each ending in 2x2 max pooling. Defaults to 5.
        convs_per_block: convolutions in each block. Defaults to 1.
        conv_activation / dense_activation: relu, gelu, silu or mish.
        batch_norm: batch normalisation after each convolution. Defaults to True.
        dropout: dropout before the dense layer and before the softmax. Defaults to 0.3.
        dense_units: width of the dense layer; 0 for none. Defaults to 256.
    """

    base_filters: int = 32
    filter_strategy: str = "doubling"
    filter_size: int = 3
    blocks: int = 5
    convs_per_block: int = 1
    conv_activation: str = "relu"
    dense_activation: str = "relu"
    batch_norm: bool = True
    dropout: float = 0.3
    dense_units: int = 256

    def __post_init__(self) -> None:
        for knob in fields(self):  # a config file can hold anything YAML parses: `blocks: five`
            value = getattr(self, knob.name)
            wrong_bool = isinstance(value, bool) and knob.type != "bool"
            if wrong_bool or not isinstance(value, _TYPES[knob.type]):
                expected = "a number" if knob.type == "float" else knob.type
                raise ValueError(f"{knob.name} must be {expected}, got {value!r}")
        if self.filter_strategy not in FILTER_STRATEGIES:
            raise ValueError(
                f"unknown filter_strategy {self.filter_strategy!r}; expected one of "
                f"{FILTER_STRATEGIES}"
            )
        for key in ("conv_activation", "dense_activation"):
            if getattr(self, key) not in ACTIVATIONS:
                raise ValueError(
                    f"unknown {key} {getattr(self, key)!r}; expected one of {ACTIVATIONS}"
                )
        if self.filter_size not in (3, 5):
            raise ValueError(f"filter_size must be 3 or 5, got {self.filter_size}")
        for key in ("base_filters", "blocks", "convs_per_block"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be at least 1, got {getattr(self, key)}")
        if self.dense_units < 0:
            raise ValueError(f"dense_units must be >= 0 (0: none), got {self.dense_units}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    def block_filters(self) -> list[int]:
        """Filters per block under the chosen strategy."""
        if self.filter_strategy == "same":
            return [self.base_filters] * self.blocks
        if self.filter_strategy == "doubling":
            return [min(self.base_filters * 2**i, 256) for i in range(self.blocks)]
        return [max(self.base_filters // 2**i, 8) for i in range(self.blocks)]
