"""The argparse parser every subcommand uses."""

from __future__ import annotations

import argparse

from benchmark.output import RUN_BENCHMARK


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line on stderr and exit status 2 (no usage dump)."""

    def error(self, message: str) -> None:
        self.exit(2, f"{RUN_BENCHMARK}: {message} (see --help)\n")
