"""The command line behind `run_benchmark.py`: one parser per subcommand, and the dispatch from a
subcommand's parsed flags to the part of `benchmark/` that does the work.

Nothing here imports TensorFlow when imported: `--help`, a bad flag and a refused configuration
answer within a second (a test checks it); `dispatch.start` loads TensorFlow only after the flags
and the configuration have been checked. docs/reference/flags.md is generated from these parsers
(scripts/gen_docs.py).
"""
