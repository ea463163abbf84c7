"""KerasTuner searches over the benchmark recipe: spaces as data, trials, importance."""
