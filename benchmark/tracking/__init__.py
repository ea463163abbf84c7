"""Experiment tracking: each grid cell (and tune trial) as an MLflow run, and TensorBoard logs per
cell.

Off by default; `--mlflow [URI]` and `--tensorboard` turn it on. The grid loop only sees the small
`benchmark.run.tracking.GridTracker` interface; `make_tracker` returns its no-op base when both
are off, so a plain run imports neither MLflow nor TensorBoard.
"""

from benchmark.tracking.tracker import ExperimentTracker, make_tracker

__all__ = ["ExperimentTracker", "make_tracker"]
