"""Cross-dataset evaluation: a finished run's saved models scored on another labelled image set."""
