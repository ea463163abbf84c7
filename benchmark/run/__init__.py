"""Running a grid: the run folder, its cells, records, resume, late fusion, saved models, Slurm
and devices."""
