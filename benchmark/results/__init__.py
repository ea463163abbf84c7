"""Reading a run's records: leaderboards and tables, statistics, plots and the markdown report."""
