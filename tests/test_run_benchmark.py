"""run_benchmark.py's subcommands come from one mapping: each name dispatches to its own parser, and
`--help` lists exactly those names."""

import pytest

import run_benchmark


@pytest.mark.parametrize("name", list(run_benchmark.SUBCOMMANDS))
def test_each_subcommand_dispatches_to_its_own_parser(name, capsys):
    with pytest.raises(SystemExit) as exit_:
        run_benchmark.main([name, "--help"])
    assert exit_.value.code == 0
    prog = "run_benchmark.py" if name == "run" else f"run_benchmark.py {name}"
    assert capsys.readouterr().out.startswith(f"usage: {prog} ")


def test_help_lists_the_subcommands_of_the_mapping(capsys):
    with pytest.raises(SystemExit):
        run_benchmark.main(["--help"])
    listed = capsys.readouterr().out.split("subcommands: ")[1].split(" (run")[0]
    assert listed.split(", ") == list(run_benchmark.SUBCOMMANDS)
