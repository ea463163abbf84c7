"""Training one model: the two-phase recipe, per-epoch checkpoints, stored head features and
metrics."""
