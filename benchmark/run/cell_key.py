"""What identifies one trained cell: a typed key, and the file name it is stored under.

The key's fields are the identity; `cell_id` is only the file name (`cells/<cell_id>.json`) and
never read back into fields. Records carry model, alpha, seed and fold as fields of their own, so
a table groups them by those, whatever their file is called (a renamed copy, a hand-made record).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CellKey:
    """One grid cell's coordinates.

    Args:
        model: the registry name (for a record, its leaderboard label).
        alpha: the class-weight damping it trained with.
        seed: its training seed.
        fold: with `--folds K`, the fold it trained and was scored on; None for the run's one split.
    """

    model: str
    alpha: float
    seed: int
    fold: int | None = None

    @property
    def cell_id(self) -> str:
        """File-name-safe and stable across runs, so a resumed folder finds its records:
        `mobilenet_v2__alpha0.5__seed0`, `...__seed0__fold2` with folds."""
        base = f"{self.model}__alpha{self.alpha:g}__seed{self.seed}"
        return base if self.fold is None else f"{base}__fold{self.fold}"
