"""The shifted copy of a dataset: deterministic, shifted, held-out parts disjoint, SRC untouched;
and the script's refusals."""

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data_pipeline import sample_data_dir
from data_pipeline.shift import (
    LOG_NAME,
    ShiftSettings,
    border_colour,
    change_background,
    make_shifted_copy,
)

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "make_shifted_dataset.py"


@pytest.fixture
def sample(tmp_path) -> Path:
    """Four real sample photos of each of three classes (the embedded TrashNet sample)."""
    root = tmp_path / "src"
    for name in ("glass", "paper", "trash"):
        (root / name).mkdir(parents=True)
        for path in sorted((sample_data_dir() / name).glob("*.jpg"))[:4]:
            shutil.copy(path, root / name / path.name)
    return root


def digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_the_copy_is_deterministic_shifted_and_leaves_src_alone(sample, tmp_path):
    before = digests(sample)
    make_shifted_copy(sample, tmp_path / "a", seed=3)
    make_shifted_copy(sample, tmp_path / "b", seed=3)
    make_shifted_copy(sample, tmp_path / "c", seed=4)
    assert digests(sample) == before
    assert digests(tmp_path / "a") == digests(tmp_path / "b")
    assert digests(tmp_path / "a") != digests(tmp_path / "c")
    shifted = sorted((tmp_path / "a").rglob("*.jpg"))
    assert len(shifted) == 12 and {p.parent.name for p in shifted} == {"glass", "paper", "trash"}
    original = np.asarray(Image.open(sorted(sample.rglob("*.jpg"))[0]), np.float32)
    copy = np.asarray(Image.open(shifted[0]), np.float32)
    assert copy.shape != original.shape or np.abs(copy - original).mean() > 10
    log = (tmp_path / "a" / LOG_NAME).read_text().splitlines()
    assert len(log) == 13 and all("crop" in line for line in log[1:])


def test_fraction_and_rest_split_the_source_without_a_shared_photo(sample, tmp_path):
    written = make_shifted_copy(sample, tmp_path / "out", fraction=0.5, rest=tmp_path / "rest")
    assert written == {"glass": 2, "paper": 2, "trash": 2}
    rest = {p.relative_to(tmp_path / "rest").as_posix() for p in (tmp_path / "rest").rglob("*.jpg")}
    log = (tmp_path / "out" / LOG_NAME).read_text().splitlines()[1:]
    taken = {line.split(",")[0] for line in log}
    assert len(rest) == 6 and not rest & taken
    assert rest | taken == {p.relative_to(sample).as_posix() for p in sample.rglob("*.jpg")}


def test_background_change_touches_the_backdrop_not_the_object():
    image = np.full((40, 40, 3), 200.0)
    image[10:30, 10:30] = (20.0, 40.0, 160.0)  # the object on a uniform grey backdrop
    assert np.allclose(border_colour(image), 200.0)
    out = change_background(image, np.random.default_rng(0), ShiftSettings())
    assert np.abs(out[15:25, 15:25] - image[15:25, 15:25]).max() < 1
    assert np.abs(out[:4] - image[:4]).mean() > 5


def run_script(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True
    )


def test_the_script_writes_the_pair_and_refuses_bad_folders(sample, tmp_path):
    done = run_script(sample, tmp_path / "shifted", "--fraction", "0.5", "--rest", tmp_path / "r")
    assert done.returncode == 0, done.stderr
    assert "6 shifted images in 3 classes" in done.stdout
    before = digests(sample)
    for args, names in [
        ((sample, sample / "out"), "inside SRC"),
        ((sample, tmp_path / "shifted"), "already exists"),
        ((sample, tmp_path / "x", "--fraction", "0"), "--fraction 0"),
        ((sample, tmp_path / "x", "--rest", tmp_path / "y"), "--rest needs --fraction"),
        ((tmp_path / "missing", tmp_path / "x"), "is not a folder"),
    ]:
        refused = run_script(*args)
        assert refused.returncode == 2 and "Traceback" not in refused.stderr
        assert names in refused.stderr and refused.stderr.count("\n") == 1
    assert digests(sample) == before and not (tmp_path / "x").exists()


def test_the_camera_style_gives_every_image_one_look_and_its_own_framing(sample, tmp_path):
    from data_pipeline.shift_camera import camera_look, camera_shifter

    make_shifted_copy(sample, tmp_path / "a", seed=5, shifter=camera_shifter(5))
    make_shifted_copy(sample, tmp_path / "b", seed=5, shifter=camera_shifter(5))
    make_shifted_copy(sample, tmp_path / "mixed", seed=5)
    assert digests(tmp_path / "a") == digests(tmp_path / "b")
    assert digests(tmp_path / "a") != digests(tmp_path / "mixed")
    look = camera_look(5)
    assert camera_look(5) == look and camera_look(6) != look
    log = (tmp_path / "a" / LOG_NAME).read_text().splitlines()[1:]
    steps = [line.split(",")[2] for line in log]
    shared = " ".join(look.steps())
    assert len(steps) == 12 and all(step.endswith(shared) for step in steps)
    sizes = {Image.open(p).size for p in (tmp_path / "a").rglob("*.jpg")}
    assert len(sizes) > 1  # each image framed (cropped, rescaled) on its own


def test_the_script_makes_the_camera_style(sample, tmp_path):
    from data_pipeline.shift_camera import camera_look

    done = run_script(sample, tmp_path / "cam", "--style", "camera", "--seed", "2")
    assert done.returncode == 0, done.stderr
    log = (tmp_path / "cam" / LOG_NAME).read_text().splitlines()[1:]
    assert len(log) == 12 and all(" ".join(camera_look(2).steps()) in line for line in log)
