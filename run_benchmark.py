#!/usr/bin/env python
"""Garbage-classification transfer-learning benchmark: the command line.

    python run_benchmark.py --help                    # the subcommands and the flags of `run`
    python run_benchmark.py --preset smoke            # offline first run, minutes on a laptop

This file only hands its arguments to `benchmark.cli.dispatch.main`: the parsers of the
subcommands live in `benchmark/cli/` (docs/reference/flags.md is generated from them), and each
subcommand's work in its part of `benchmark/`.
"""

from __future__ import annotations

import sys

from benchmark.cli.dispatch import SUBCOMMANDS, main

__all__ = ["SUBCOMMANDS", "main"]

if __name__ == "__main__":
    sys.exit(main())
