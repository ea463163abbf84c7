"""scripts/check_imports.py: the project has no import cycle, and the check does find one."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "check_imports.py"


def check(root: Path, *flags: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(SCRIPT), str(root), *flags]
    return subprocess.run(command, capture_output=True, text=True)


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_the_project_has_no_import_cycle():
    result = check(ROOT)
    assert result.returncode == 0, result.stderr
    assert "no cycle" in result.stdout


def test_the_project_has_no_cycle_through_type_checking_imports_either():
    """`ModelEntry` lives beside `BuiltModel` (models/spec.py), so the two name each other without
    models.registry and models.spec importing each other."""
    result = check(ROOT, "--type-checking")
    assert result.returncode == 0, result.stderr


def test_a_cycle_through_a_function_level_import_fails_with_its_path(tmp_path):
    write(
        tmp_path,
        {
            "models/__init__.py": "",
            "models/a.py": "from models.b import x\n",
            "models/b.py": "def x():\n    from models import a\n",
        },
    )
    result = check(tmp_path)
    assert result.returncode == 1
    assert "import cycle: models.a -> models.b -> models.a" in result.stderr


def test_entering_a_package_from_outside_runs_its_init(tmp_path):
    # results.t imports run.b, which first runs benchmark/run/__init__.py: run.a -> results.t.
    write(
        tmp_path,
        {
            "benchmark/__init__.py": "",
            "benchmark/run/__init__.py": "import benchmark.run.a\n",
            "benchmark/run/a.py": "import benchmark.results.t\n",
            "benchmark/run/b.py": "",
            "benchmark/results/__init__.py": "",
            "benchmark/results/t.py": "import benchmark.run.b\n",
        },
    )
    result = check(tmp_path)
    assert result.returncode == 1
    loop = "benchmark.results.t -> benchmark.run -> benchmark.run.a -> benchmark.results.t"
    assert loop in result.stderr


def test_a_layer_importing_upward_fails(tmp_path):
    write(
        tmp_path,
        {
            "models/__init__.py": "",
            "models/e.py": "",
            "data_pipeline/__init__.py": "",
            "data_pipeline/c.py": "def f():\n    import models.e\n",
        },
    )
    result = check(tmp_path)
    assert result.returncode == 1 and "layer: data_pipeline.c imports models.e" in result.stderr


def test_type_checking_imports_count_only_when_asked(tmp_path):
    guarded = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from models.{} import X\n"
    write(
        tmp_path,
        {
            "models/__init__.py": "",
            "models/a.py": guarded.format("b"),
            "models/b.py": guarded.format("a"),
        },
    )
    assert check(tmp_path).returncode == 0
    assert "models.a -> models.b -> models.a" in check(tmp_path, "--type-checking").stderr


def test_relative_imports_resolve(tmp_path):
    write(
        tmp_path,
        {
            "benchmark/__init__.py": "",
            "benchmark/p/__init__.py": "",
            "benchmark/p/q.py": "from ..r import y\n",
            "benchmark/r.py": "from benchmark.p import q\n",
        },
    )
    assert "benchmark.p.q -> benchmark.r -> benchmark.p.q" in check(tmp_path).stderr
