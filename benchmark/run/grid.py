"""The benchmark grid: models x alphas x seeds, in a fixed order that `--cell I` indexes."""
from __future__ import annotations

from dataclasses import dataclass

from benchmark.config.run_config import RunConfig
from models import get_entry


@dataclass(frozen=True)
class Cell:
    """One trained model: a registry name, a class-weight damping alpha and a seed."""

    index: int
    model: str
    alpha: float
    seed: int

    @property
    def cell_id(self) -> str:
        """File-name-safe id, stable across runs (`mobilenet_v2__alpha0.5__seed0`)."""
        return f"{self.model}__alpha{self.alpha:g}__seed{self.seed}"


def expand_components(models: list[str]) -> list[str]:
    """Puts each late-fusion model's trained components before it, unless the grid has them already."""
    ordered: list[str] = []
    for model in models:
        for component in get_entry(model).components:
            if component not in ordered:
                ordered.append(component)
        if model not in ordered:
            ordered.append(model)
    return ordered


def build_grid(config: RunConfig) -> list[Cell]:
    """Cells in model-major order, so one model's alpha sweep runs back to back.

    A late-fusion model combines trained cells, so its components join the grid ahead of it. A
    zero-shot row trains nothing, so neither class-weight damping nor a training seed can change it:
    it gets one cell, at the first alpha and seed (its record says that they do not apply).
    """
    cells = []
    for model in expand_components(config.models):
        zero_shot = get_entry(model).zero_shot
        for alpha in config.alphas[:1] if zero_shot else config.alphas:
            for seed in config.seeds[:1] if zero_shot else config.seeds:
                cells.append(Cell(len(cells), model, float(alpha), int(seed)))
    return cells
