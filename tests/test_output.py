"""What the suite prints goes through `benchmark.output`: no bare `print(` elsewhere in
`benchmark/`, each kind of line on its stream with its prefix, and exceptions summarised by one
function."""

import ast
import io
import sys
from pathlib import Path

from benchmark import output
from benchmark.errors import error_line

ROOT = Path(__file__).resolve().parents[1]


def print_calls(path: Path) -> list[int]:
    """Lines of `path` that call the builtin `print` (a comment or a name like `fingerprint(` is
    not one)."""
    tree = ast.parse(path.read_text())
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "print"
    ]


def test_only_the_output_module_prints():
    found = {
        str(path.relative_to(ROOT)): lines
        for path in sorted((ROOT / "benchmark").rglob("*.py"))
        if path.name != "output.py" and (lines := print_calls(path))
    }
    assert found == {}, "use benchmark.output (say, warn, notice, to_stderr, refuse)"


def test_the_scan_sees_a_print(tmp_path):
    module = tmp_path / "module.py"
    module.write_text('def f():\n    split_fingerprint(1)  # print( in a comment\n    print("x")\n')
    assert print_calls(module) == [3]


def test_each_kind_of_line_goes_to_its_stream_with_its_prefix(capsys):
    output.say("run folder: x")
    output.warn("a file is damaged")
    output.notice("DATA holds the run's own images")
    output.to_stderr("device: 1 GPU(s) visible")
    output.refuse("--models: no model matches 'x'")
    captured = capsys.readouterr()
    assert captured.out == "run folder: x\n"
    assert captured.err == (
        "warning: a file is damaged\n"
        "note: DATA holds the run's own images\n"
        "device: 1 GPU(s) visible\n"
        "run_benchmark: --models: no model matches 'x'\n"
    )


def test_lines_follow_a_stdout_swapped_after_import(monkeypatch):
    """The progress line's guard and a child's relay replace sys.stdout while a run goes on."""
    swapped = io.StringIO()
    monkeypatch.setattr(sys, "stdout", swapped)
    output.say("done")
    assert swapped.getvalue() == "done\n"


def test_error_line_is_the_type_and_the_first_line():
    assert error_line(ValueError("shape (3,) expected 4 rows\ndetails")) == (
        "ValueError: shape (3,) expected 4 rows"
    )
    assert error_line(EOFError()) == "EOFError: EOFError"
    assert error_line(EOFError(), default="") == "EOFError: "
    assert error_line(OSError("x" * 300), limit=200) == "OSError: " + "x" * 200
