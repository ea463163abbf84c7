"""A tiny finished run, trained once for the app's tests, a `serve` process over it, a browser.

The run is the command-line tests' smallest grid (simple_cnn at 32 px, one alpha, one epoch) on
three classes of eight made-up photos, with its best model saved (`--save-models best`, the
default) and profiled, which keeps its LiteRT int8 export for the app.
"""

import time
from pathlib import Path

import pytest
from app_helpers import TINY_FLAGS, Server, make_images, run_cli

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="package")
def tiny_run(tmp_path_factory) -> tuple[Path, Path]:
    """(image folder, finished run folder with its saved model), trained once for tests/app."""
    root = tmp_path_factory.mktemp("app")
    data = make_images(root / "data")
    run_dir = root / "run"
    done = run_cli(*TINY_FLAGS, "--data", str(data), "--output", str(run_dir))
    assert done.returncode == 0, done.stdout + done.stderr
    return data, run_dir


@pytest.fixture(scope="package")
def server(tiny_run, tmp_path_factory):
    started = time.perf_counter()
    serving = Server(tiny_run[1], tmp_path_factory.mktemp("serve") / "serve.log")
    serving.start_seconds = time.perf_counter() - started
    yield serving
    serving.stop()


@pytest.fixture(scope="package")
def browser():
    """Debian's chromium, headless, driven by Playwright (never `playwright install`)."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.is_file():
        pytest.skip("no /usr/bin/chromium (apt-get install chromium; .ci/run does)")
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield chromium
        chromium.close()
