"""The app's HTTP routes: one page, its static files, the run's results and `/api/predict`.

Every answer is built from the run folder and the package: the page loads no script, style, font
or image from anywhere else, so it works offline. Refusals and failures are JSON with one `error`
line the page shows; a traceback goes to the server's log, never to the browser.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from benchmark.app.classifier import Classifiers, refusal
from benchmark.app.run_folder import class_metrics, plot_files, unlike_threshold
from benchmark.app.uploads import ACCEPTED, MAX_BYTES, MAX_FILES, MAX_PIXELS, Refused, check_upload
from benchmark.errors import first_line

STATIC = Path(__file__).parent / "static"
# Files of the run folder the page links to (besides the plots); nothing else of it is served.
RUN_FILES = ("leaderboard.csv", "leaderboard.md", "report.md", "deployment.csv", "config.yaml")
logger = logging.getLogger(__name__)


def create_app(run_dir: Path, classifiers: Classifiers, summary: dict) -> FastAPI:
    """The FastAPI app over one run; `classifiers` already holds its default model, loaded."""
    app = FastAPI(
        title="waste-classifier benchmark", docs_url=None, redoc_url=None, openapi_url=None
    )
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    plots = set(plot_files(run_dir))
    summary = {
        **summary,
        "default": classifiers.default,
        "limits": {
            "bytes": MAX_BYTES,
            "pixels": MAX_PIXELS,
            "files": MAX_FILES,
            "accepted": ACCEPTED,
        },
    }

    @app.exception_handler(Exception)
    async def failed(request: Request, err: Exception) -> JSONResponse:
        logger.exception("serve: %s failed", request.url.path)
        return JSONResponse({"error": f"the server could not do that: {first_line(err)}"}, 500)

    @app.get("/")
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    @app.get("/api/run")
    def run() -> dict:
        return summary

    @app.get("/api/model/{key}")
    def model(key: str):
        choice = classifiers.choices.get(key)
        if choice is None:
            return JSONResponse({"error": f"no saved model {key!r} in this run"}, 404)
        threshold, note = unlike_threshold(run_dir, choice.record)
        return {**class_metrics(choice.record), "threshold": threshold, "threshold_note": note}

    @app.get("/run/{name:path}")
    def run_file(name: str):
        if name not in plots and name not in RUN_FILES:
            return JSONResponse({"error": f"{name!r} is not a file this page shows"}, 404)
        path = run_dir / name
        if not path.is_file():
            return JSONResponse({"error": f"this run has no {name}"}, 404)
        return FileResponse(path)

    @app.post("/api/predict")
    async def predict(request: Request) -> JSONResponse:
        size = int(request.headers.get("content-length") or 0)
        if size > MAX_FILES * MAX_BYTES:
            return JSONResponse({"error": f"{size / 2**20:.0f} MB sent at once is too much"}, 413)
        form = await request.form(max_files=MAX_FILES + 1)
        key = str(form.get("model") or classifiers.default)
        if key not in classifiers.choices:
            return JSONResponse({"error": f"no saved model {key!r} in this run"}, 400)
        files = [f for f in form.getlist("files") if isinstance(f, UploadFile)]
        if not files:
            return JSONResponse({"error": f"no photo received; choose a {ACCEPTED} photo"}, 400)
        if len(files) > MAX_FILES:
            return JSONResponse(
                {"error": f"{len(files)} photos at once; send at most {MAX_FILES} per batch"}, 400
            )
        accepted, results = [], []
        for upload in files:
            name = upload.filename or "photo"
            data = await upload.read(MAX_BYTES + 1)  # enough to know it is too large
            try:
                accepted.append(check_upload(name, data, max(upload.size or 0, len(data))))
                results.append(None)
            except Refused as err:
                results.append(refusal(name, str(err)))
        scored = iter(await run_in_threadpool(classifiers.classify_all, key, accepted))
        results = [r if r is not None else next(scored) for r in results]
        classifier = classifiers.get(key)
        return JSONResponse(
            {
                "model": key,
                "runtime": classifier.choice.runtime_label,
                "threshold": classifier.threshold,
                "threshold_note": classifier.threshold_note,
                "results": results,
            }
        )

    return app
