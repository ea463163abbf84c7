"""docs/bad-input.md names, for each kind of bad input, the tests that pin what it gets. Those names
are checked here by reading the test files (no pytest run), so a renamed or deleted test cannot
leave the page citing one that no longer exists."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "bad-input.md"
# tests/run/test_plan.py::test_name or ...::test_name[case] (a case of a parametrized test)
CITED = re.compile(r"(tests/[\w/.-]+\.py)::(\w+)(?:\[([\w-]+)\])?")


def missing_citations(text: str, root: Path = ROOT) -> list[str]:
    """The citations in `text` whose file, test function or case does not exist under `root`."""
    missing = []
    for match in CITED.finditer(text):
        path, name, case = match.groups()
        source = root / path
        body = source.read_text() if source.is_file() else ""
        if not re.search(rf"^\s*(?:async\s+)?def {name}\(", body, re.MULTILINE):
            missing.append(match.group(0))
        elif case and not is_case_id(case, body):
            missing.append(match.group(0))
    return missing


def is_case_id(case: str, body: str) -> bool:
    """Whether `case` is a whole pytest id in a test file: an item of an `ids=` list, a dict key
    opening its line (`parametrize("case", list(CASES))`) or an item of a one-argument
    parametrize list. A value that opens a tuple of arguments, `("case", "message")`, is only
    part of its id (`case-message`)."""
    quoted = rf"""["']{re.escape(case)}["']"""
    if re.search(r"^\s*" + quoted + r"\s*:", body, re.MULTILINE):
        return True
    spans = re.findall(r"ids=\s*[\[(](.*?)[\])]", body, re.DOTALL)
    spans += re.findall(r"parametrize\(\s*[\"'](\w+)[\"']\s*,\s*\[(.*?)\]", body, re.DOTALL)
    return any(re.search(quoted, span if isinstance(span, str) else span[1]) for span in spans)


def table_rows(text: str) -> list[tuple[str, dict[str, str]]]:
    """(section, cells) of each body row of each table, by the `##` heading above it."""
    rows, section, header = [], "", None
    for line in text.splitlines():
        if line.startswith("## "):
            section = line[3:]
        if not line.startswith("|"):
            header = None
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
        elif not set(line) <= set("|- :"):
            rows.append((section, dict(zip(header, cells))))
    return rows


def test_every_test_the_page_names_exists():
    text = PAGE.read_text()
    assert len(CITED.findall(text)) > 40, "the page cites its tests as tests/path.py::name"
    assert missing_citations(text) == []


def test_every_row_of_every_table_names_its_tests_or_says_untested():
    rows = table_rows(PAGE.read_text())
    assert len({section for section, _ in rows}) == 5, "one table per topic"
    for section, row in rows:
        assert list(row) == ["input", "what you see", "exit", "what is kept", "test"], section
        assert CITED.search(row["test"]) or row["test"] == "untested", (section, row["input"])


def test_a_renamed_test_or_case_is_caught(tmp_path):
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests/test_x.py").write_text(
        '@pytest.mark.parametrize("case", ["kept"])\ndef test_real(case):\n    pass\n'
        '@pytest.mark.parametrize("a, b", [("part", 1)])\ndef test_pairs(a, b):\n'
        '    if a == "part":\n        pass\n'
    )
    page = (
        "`tests/test_x.py::test_real` `tests/test_x.py::test_real[kept]` "
        "`tests/test_x.py::test_gone` `tests/test_x.py::test_real[gone]` `tests/test_y.py::test_a` "
        "`tests/test_x.py::test_pairs` `tests/test_x.py::test_pairs[part]`"
    )
    assert missing_citations(page, tmp_path) == [
        "tests/test_x.py::test_gone",
        "tests/test_x.py::test_real[gone]",
        "tests/test_y.py::test_a",
        "tests/test_x.py::test_pairs[part]",  # its id is part-1
    ]
