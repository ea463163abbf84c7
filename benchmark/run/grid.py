"""The benchmark grid: models x alphas x seeds (x folds with `--folds K`), in a fixed order that
`--cell I` indexes.
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmark.config.run_config import RunConfig
from benchmark.plan import ModelPlan
from benchmark.run.cell_key import CellKey


@dataclass(frozen=True)
class Cell:
    """One trained model: a registry name, a class-weight damping alpha, a seed and, with `--folds`,
    a fold.
    """

    index: int
    model: str
    alpha: float
    seed: int
    fold: int | None = None  # None: the run's one split (`splits.csv`)

    @property
    def key(self) -> CellKey:
        return CellKey(self.model, self.alpha, self.seed, self.fold)

    @property
    def cell_id(self) -> str:
        """The file name of the cell's record (`CellKey.cell_id`)."""
        return self.key.cell_id


def build_grid(config: RunConfig, plans: dict[str, ModelPlan]) -> list[Cell]:
    """Cells in model-major order, so one model's alpha sweep runs back to back.

    `plans` are the run's (`resolve_plans`), in grid order: a late-fusion model combines trained
    cells, so its components come ahead of it. A zero-shot row trains nothing, so neither
    class-weight damping nor a training seed can change it: it gets one cell, at the first alpha
    and seed (its record says that they do not apply), per fold. With `--folds K` every cell is
    repeated for folds 0..K-1, the innermost axis.
    """
    folds = [None] if config.folds is None else list(range(config.folds))
    cells = []
    for model, plan in plans.items():
        zero_shot = plan.kind == "zero_shot"
        for alpha in config.alphas[:1] if zero_shot else config.alphas:
            for seed in config.seeds[:1] if zero_shot else config.seeds:
                for fold in folds:
                    cells.append(Cell(len(cells), model, float(alpha), int(seed), fold))
    return cells
