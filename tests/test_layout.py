"""The architecture as a test: imports point one way, between packages and between benchmark's
parts."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Each part may import only parts after it in this order (docs/design.md).
BENCHMARK_ORDER = [
    "cli",  # run_benchmark.py's parsers and dispatch: the front door, above every part
    "adapt",  # runs the grid once per k through commands.run_command
    "commands",
    "app",
    "listing",
    "tune",
    "tracking",
    "cross_dataset",
    "results",
    "inference",
    "deployment",
    "run",
    "plan",
    "config",
    "training",
    "figures",
    "io",
    "progress",
    "quiet",
    "errors",
    "output",  # every printed line (stdout, warnings, refusals); imports nothing of the project
]


def imports_of(folder: str) -> dict[str, set[str]]:
    """Module path -> the first-party modules it imports (at any depth, lazy imports included)."""
    found = {}
    for path in (ROOT / folder).rglob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
        found[str(path.relative_to(ROOT))] = {
            n for n in names if n.split(".")[0] in ("benchmark", "models", "data_pipeline")
        }
    return found


def test_models_and_data_pipeline_import_neither_each_other_nor_benchmark():
    for package, forbidden in (
        ("models", {"benchmark", "data_pipeline"}),
        ("data_pipeline", {"benchmark", "models"}),
    ):
        for module, names in imports_of(package).items():
            assert not {n.split(".")[0] for n in names} & forbidden, (module, names)


def test_the_registry_imports_no_model_module():
    (names,) = [n for m, n in imports_of("models").items() if m.endswith("registry.py")]
    assert names <= {"models.errors", "models.spec"}, names


def test_benchmark_parts_import_only_later_parts():
    for module, names in imports_of("benchmark").items():
        part = Path(module).parts[1].removesuffix(".py")
        if part == "__init__":
            continue
        for name in names:
            bits = name.split(".")
            if bits[0] != "benchmark" or len(bits) < 2 or bits[1] == part:
                continue
            assert BENCHMARK_ORDER.index(bits[1]) > BENCHMARK_ORDER.index(part), (
                f"{module} imports {name}"
            )


MAX_MODULE_LINES = 400
# Pending: over the limit today and being reworked on other branches (issue 40); each comes off
# this list when its rework lands under the limit.
PENDING_LONG_MODULES = {
    "benchmark/run/cell.py",  # the plan passed down to cells
}


def test_no_module_is_over_the_line_limit():
    """A module over about 400 lines holds more than one concern: split it by concern (the
    project rule, docs/development.md "Layout")."""
    files = [ROOT / "run_benchmark.py"]
    for package in ("benchmark", "models", "data_pipeline"):
        files += (ROOT / package).rglob("*.py")
    long = {
        str(path.relative_to(ROOT)): count
        for path in files
        if (count := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert set(long) <= PENDING_LONG_MODULES, {
        name: count for name, count in long.items() if name not in PENDING_LONG_MODULES
    }
    done = PENDING_LONG_MODULES - set(long)
    assert not done, f"{sorted(done)} now within the limit: take it off PENDING_LONG_MODULES"
