"""The `serve` page in a real browser: photos classified as `predict` classifies them, refusals
shown on the page while the server keeps serving, the run's tables and a CSV of the predictions."""

import csv

import pytest
from app_helpers import run_cli
from PIL import Image


@pytest.fixture
def page(browser, server, tmp_path):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    opened = context.new_page()
    requested = []
    opened.on("request", lambda request: requested.append(request.url))
    opened.goto(server.url)
    opened.wait_for_selector("body[data-ready=true]", timeout=60_000)
    yield opened
    opened.screenshot(path=str(tmp_path / "page.png"), full_page=True)
    context.close()
    # offline: every request the page made went to the app itself
    assert all(
        url.startswith(server.url) or url.startswith(("data:", "blob:")) for url in requested
    )


def upload(page, files, expected_cards: int) -> None:
    page.set_input_files("#files", [str(f) for f in files])
    page.wait_for_function(
        f"document.querySelectorAll('#results .card').length >= {expected_cards}",
        timeout=120_000,
    )


def test_uploaded_photos_show_the_class_predict_gives_and_download_as_csv(page, tiny_run, tmp_path):
    data, run_dir = tiny_run
    photos = [data / name / f"{name}_0.png" for name in ("glass", "paper", "plastic")]
    page.select_option("#model", "simple_cnn")  # the Keras model `predict RUN_DIR` loads
    upload(page, photos, 3)
    shown = {
        card.get_attribute("data-file"): card.get_attribute("data-label")
        for card in page.query_selector_all("#results .card")
    }
    table = tmp_path / "predict.csv"
    done = run_cli("predict", str(run_dir), *map(str, photos), "--csv", str(table))
    assert done.returncode == 0, done.stderr
    with table.open() as rows:
        expected = {row["file"].rsplit("/", 1)[-1]: row["label_1"] for row in csv.DictReader(rows)}
    assert shown == expected
    first = page.query_selector("#results .card")
    assert len(first.query_selector_all(".bar")) == 3
    assert (
        first.query_selector("img[alt='Grad-CAM heatmap']")
        .get_attribute("src")
        .startswith("data:image/png;base64,")
    )
    assert "Keras float32:" in first.inner_text() and "ms for this photo" in first.inner_text()
    with page.expect_download() as download:
        page.click("#download")
    with open(download.value.path()) as saved:
        downloaded = list(csv.DictReader(saved))
    assert [row["file"] for row in downloaded] == [p.name for p in photos]
    assert {row["file"]: row["label_1"] for row in downloaded} == expected


def test_the_default_model_is_the_best_cells_litert_int8_export(page, tiny_run):
    data, run_dir = tiny_run
    assert (run_dir / "deployment" / "simple_cnn.int8_full.tflite").is_file()
    assert page.input_value("#model") == "simple_cnn.litert-int8"
    assert "ms per image when the run was profiled" in page.inner_text("#model-info")
    upload(page, [data / "paper" / "paper_2.png"], 1)
    card = page.query_selector("#results .card")
    assert card.get_attribute("data-label") in ("glass", "paper", "plastic")
    assert "LiteRT int8:" in card.inner_text()


def test_a_text_file_and_a_huge_png_are_refused_on_the_page_and_the_server_keeps_serving(
    page, server, tiny_run, tmp_path
):
    fake = tmp_path / "notes.jpg"
    fake.write_text("not a photo at all\n")
    huge = tmp_path / "huge.png"
    Image.new("1", (12000, 12000)).save(huge)  # 17 KB on disk, 144 M pixels once decoded
    upload(page, [fake, huge], 2)
    message = page.inner_text("#message")
    assert "notes.jpg: not an image the app can read" in message
    assert "huge.png: 12000x12000 pixels is too large to decode" in message
    assert "Traceback" not in page.content()
    assert server.alive()
    upload(page, [tiny_run[0] / "glass" / "glass_1.png"], 3)
    assert page.query_selector("#results .card:not(.refused)").get_attribute("data-label")


def test_the_result_tabs_show_the_runs_leaderboard_classes_and_confusion_matrix(page):
    page.click("nav button[data-tab=leaderboard]")
    assert page.query_selector("#board tr.current")  # the model in use, highlighted
    assert "simple_cnn" in page.inner_text("#board")
    page.click("nav button[data-tab=classes]")
    names = [
        cell.inner_text() for cell in page.query_selector_all("#per-class tbody td:first-child")
    ]
    assert names == ["glass", "paper", "plastic"]
    assert len(page.query_selector_all("#confusion tbody tr")) == 3
    page.click("nav button[data-tab=plots]")
    assert page.query_selector("#gallery img")
