"""The documentation says what the code does: the generated reference pages are current, the README
links resolve, and the built site loads nothing from the web."""

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _gen_docs():
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "scripts" / "gen_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_reference_pages_are_current():
    assert _gen_docs().stale_pages() == [], "run python scripts/gen_docs.py; commit docs/reference"


def test_check_names_a_stale_page(tmp_path):
    gen = _gen_docs()
    for path, text in gen.generated(tmp_path).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert gen.stale_pages(tmp_path) == []
    (tmp_path / "docs/reference/presets.md").write_text("# Presets\n\nsmoke, full\n")
    assert gen.stale_pages(tmp_path) == ["docs/reference/presets.md"]


def test_flag_reference_lists_every_subcommand_and_its_defaults():
    import run_benchmark

    page = (ROOT / "docs/reference/flags.md").read_text()
    for name in run_benchmark.SUBCOMMANDS:
        assert f"\n## {name}\n" in page
    # A grid flag's default is RunConfig's (argparse's is None so presets can fill it).
    from benchmark.config.run_config import DEFAULT_MODELS

    assert f"| `--models MODELS` | `{','.join(DEFAULT_MODELS)}` |" in page
    assert "`--max-trials MAX_TRIALS` | `20` |" in page


def test_preset_reference_lists_every_preset_file():
    page = (ROOT / "docs/reference/presets.md").read_text()
    for path in (ROOT / "benchmark/config/presets").glob("*.yaml"):
        assert f"\n## {path.stem}\n" in page


def test_readme_links_resolve():
    text = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [t for t in targets if "://" not in t]
    assert local, "the README links into docs/"
    missing = [t for t in local if not (ROOT / t).exists()]
    assert missing == []


def test_built_site_loads_nothing_from_the_web(tmp_path):
    """Material's default fonts come from a web font service; `font: false` keeps the site
    readable offline. Links to other sites are fine; scripts, styles and fonts are not."""
    pytest.importorskip("material")
    from mkdocs.commands.build import build
    from mkdocs.config import load_config

    config = load_config(str(ROOT / "mkdocs.yml"), site_dir=str(tmp_path / "site"))
    build(config)
    pages = list((tmp_path / "site").rglob("*.html"))
    assert len(pages) > 10
    loads = re.compile(r"<(?:script|img|iframe)[^>]*\ssrc=\"https?://|<link[^>]*\shref=\"https?://")
    remote = [str(page) for page in pages if loads.search(page.read_text())]
    assert remote == []
    css = "".join(p.read_text() for p in (tmp_path / "site").rglob("*.css"))
    assert "fonts.googleapis" not in css and "fonts.gstatic" not in css
