"""The one decoder (`images.decode_rgb`): 16-bit PNGs, EXIF orientation and huge images, alike in
scan, training and prediction."""

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from PIL import Image, ImageOps

from data_pipeline import make_dataset, make_prediction_batch, scan_dataset
from data_pipeline.decode import decode_file
from data_pipeline.images import MAX_SIDE, content_hash, decode_rgb

REPO = Path(__file__).resolve().parents[2]


def training_pixels(path: Path, height: int, width: int) -> np.ndarray:
    """What make_dataset feeds a model at the image's own size (the resize then leaves the pixels
    alone)."""
    frame = pd.DataFrame({"path": [str(path)], "label": ["x"]})
    (batch,) = list(make_dataset(frame, ["x", "y"], image_size=(height, width), batch_size=1))
    return batch[0].numpy()[0]


def write_16bit_grey(path: Path, seed: int) -> Path:
    """A 16-bit greyscale PNG whose values all lie above 255 (PIL's own 8-bit conversion turns it
    all white)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(
        np.random.default_rng(seed).integers(256, 65536, (12, 10), dtype=np.uint16)
    ).save(path)
    return path


def test_different_16bit_pngs_are_not_duplicates(tmp_path):
    write_16bit_grey(tmp_path / "train" / "cat" / "a.png", 0)
    write_16bit_grey(tmp_path / "train" / "dog" / "b.png", 1)
    write_16bit_grey(tmp_path / "val" / "cat" / "c.png", 2)
    write_16bit_grey(tmp_path / "val" / "dog" / "d.png", 3)
    scanned = scan_dataset(
        tmp_path
    )  # before: all four hashed as the same white image, an error across splits
    assert scanned.table["content_hash"].nunique() == 4


def test_16bit_png_decodes_as_tensorflow_and_training_decode_it(tmp_path):
    path = write_16bit_grey(tmp_path / "x" / "a.png", 0)
    pixels = decode_rgb(path)
    expected = tf.io.decode_png(path.read_bytes(), channels=3).numpy()  # keeps the high byte
    np.testing.assert_array_equal(pixels, expected)
    assert pixels.std() > 10  # not clipped to white
    np.testing.assert_array_equal(decode_file(tf.constant(str(path))).numpy(), pixels)
    np.testing.assert_array_equal(training_pixels(path, 12, 10), pixels.astype(np.float32))


def write_oriented_jpeg(path: Path, orientation: int) -> Path:
    """40x20 stored pixels (red left, blue right, a green top band) tagged with an EXIF
    orientation."""
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :20, 0] = pixels[:, 20:, 2] = 255
    pixels[:5, :, 1] = 255
    exif = Image.Exif()
    exif[0x0112] = orientation
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, "JPEG", quality=95, exif=exif)
    return path


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_as_pil_transposes(tmp_path, orientation):
    path = write_oriented_jpeg(tmp_path / "a.jpg", orientation)
    with Image.open(path) as img:
        expected = np.asarray(ImageOps.exif_transpose(img).convert("RGB"))
    np.testing.assert_array_equal(decode_rgb(path), expected)


def test_exif_orientation_reaches_scan_training_and_prediction_alike(tmp_path):
    path = write_oriented_jpeg(
        tmp_path / "cat" / "phone.jpg", 6
    )  # stored landscape, shown portrait
    (tmp_path / "dog").mkdir()
    Image.new("RGB", (8, 8), "white").save(tmp_path / "dog" / "b.png")
    upright = decode_rgb(path)
    assert upright.shape == (40, 20, 3)  # turned 90 degrees clockwise: height 40, width 20
    assert (
        upright[:5, :, 0].mean() > 200 and upright[-5:, :, 2].mean() > 200
    )  # the stored left (red) on top, blue below
    assert upright[:, -5:, 1].mean() > 200  # the green band (stored on top) is on the right
    np.testing.assert_array_equal(training_pixels(path, 40, 20), upright.astype(np.float32))
    np.testing.assert_array_equal(
        make_prediction_batch([path], (40, 20))[0], upright.astype(np.float32)
    )
    table = scan_dataset(tmp_path).table
    assert table.loc[table["path"] == str(path.resolve()), "content_hash"].item() == content_hash(
        upright
    )


def test_a_huge_image_is_reduced_and_resizes_as_the_full_image_would(tmp_path):
    width = 3 * MAX_SIDE + 10  # reduced 4x (3 would still be over MAX_SIDE)
    ramp = np.tile(np.linspace(0, 255, width)[None, :, None], (60, 1, 3)).astype(np.uint8)
    path = tmp_path / "wide.png"
    Image.fromarray(ramp).save(path)
    pixels = decode_rgb(path)
    assert pixels.shape == (15, width // 4 + 1, 3) and max(pixels.shape) <= MAX_SIDE
    direct = tf.image.resize(ramp.astype(np.float32), (8, 32), antialias=True).numpy()
    np.testing.assert_allclose(make_prediction_batch([path], (8, 32))[0], direct, atol=1.5)
    np.testing.assert_array_equal(decode_file(tf.constant(str(path))).numpy(), pixels)


MEMORY_PROBE = textwrap.dedent("""
    import logging, resource, sys, time
    import numpy as np, pandas as pd
    logging.basicConfig(format="warning: %(message)s", level=logging.WARNING)
    from data_pipeline import make_dataset, scan_dataset
    root = sys.argv[1]
    paths = [root + "/cat/small.png", root + "/cat/huge.png"]
    frame = pd.DataFrame({"path": paths, "label": ["cat", "cat"]})
    def train():
        batches = make_dataset(frame, ["cat", "dog"], image_size=32, batch_size=1)
        return [b[0].numpy() for b in batches]
    frame.loc[1, "path"] = root + "/dog/small.png"
    train()  # warm TensorFlow up on small images
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    frame.loc[1, "path"] = root + "/cat/huge.png"
    images = train()
    scan_dataset(root)
    seconds = time.perf_counter() - started
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    print(f"rss growth {grown:.0f} MB in {seconds:.1f} s, {np.ptp(images[1]):.1f}", file=sys.stderr)
    """)


def test_a_huge_png_costs_bounded_memory_and_warns_in_one_line(tmp_path):
    # 100 M pixels: over PIL's 89 M-pixel warning; 1.2 GB as the float32 image tf.io used to resize
    side = 10_000
    (tmp_path / "cat").mkdir()
    (tmp_path / "dog").mkdir()
    huge = Image.new("L", (side, side), 40)
    huge.paste(200, (0, 0, side // 2, side))
    huge.save(tmp_path / "cat" / "huge.png")  # ~100 KB on disk
    del huge
    for name in ("cat", "dog"):
        Image.new("RGB", (16, 16), name == "cat" and "red" or "blue").save(
            tmp_path / name / "small.png"
        )
    done = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [
        line for line in done.stderr.splitlines() if "huge.png" in line or "Decompression" in line
    ]
    assert (
        len(lines) == 1 and lines[0].startswith("warning: ") and "reduced to 3334x3334" in lines[0]
    ), done.stderr[-2000:]
    report = next(line for line in done.stderr.splitlines() if line.startswith("rss growth"))
    grown = float(report.split()[2])
    print(report)
    assert grown < 350, (
        report
    )  # measured 230: the native 100 MB grey pixels, a strip and the reduced image; 1457 before
    assert (
        float(report.split(", ")[-1]) > 100
    )  # both halves survive the reduction (dark and bright)


@pytest.fixture(scope="module")
def too_large_png(tmp_path_factory) -> Path:
    """12000 x 12000 px, 144 M pixels, a few hundred KB on disk (the issue-30 probe's image)."""
    root = tmp_path_factory.mktemp("too_large")
    for name in ("cat", "dog"):
        (root / name).mkdir()
        for i in range(2):
            colour = (40 * i, 200 if name == "cat" else 0, 90)
            Image.new("RGB", (16, 16), colour).save(root / name / f"{i}.png")
    huge = Image.new("L", (12_000, 12_000), 40)
    huge.paste(200, (0, 0, 6_000, 12_000))
    huge.save(root / "cat" / "huge.png")
    return root


def test_an_image_over_the_pixel_limit_is_refused_from_its_header(too_large_png, monkeypatch):
    """It cost 1.6-1.9 GB of RSS to decode; now its pixels are never read."""
    from PIL import ImageFile

    from data_pipeline.images import MAX_PIXELS, ImageTooLarge, image_problem

    def no_decode(self):
        raise AssertionError("the pixels of an image over the limit were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decode)
    assert 12_000 * 12_000 > MAX_PIXELS
    with pytest.raises(ImageTooLarge, match="refused for size: 12000x12000 px, 144 M pixels"):
        decode_rgb(too_large_png / "cat" / "huge.png")
    assert image_problem(too_large_png / "cat" / "huge.png").startswith("refused for size")


def test_the_scan_names_images_refused_for_size_in_one_line(too_large_png, caplog):
    from data_pipeline import DataError

    with pytest.raises(DataError) as caught:
        scan_dataset(too_large_png)
    message = str(caught.value)
    assert "\n" not in message and message.startswith("1 too large image(s) under")
    assert "cat/huge.png (refused for size: 12000x12000 px" in message
    scanned = scan_dataset(too_large_png, skip_corrupt=True)
    assert len(scanned.table) == 4 and [Path(p).name for p, _ in scanned.skipped] == ["huge.png"]
    (line,) = [w for w in scanned.warnings if "huge.png" in w]
    assert line.startswith("skipped 1 image(s) refused for size under") and "\n" not in line


def test_a_jpeg_over_the_pixel_limit_is_read_drafted_not_refused(tmp_path):
    """libjpeg decodes it at half size (6000 x 4500 = 27 M pixels, under the limit), then it is
    halved again to fit MAX_SIDE. (A guard: this passed before the limit too.)"""
    big = Image.new("L", (12_000, 9_000), 90)
    big.paste(220, (0, 0, 6_000, 9_000))
    big.save(tmp_path / "big.jpg", quality=80)
    del big
    pixels = decode_rgb(tmp_path / "big.jpg")
    assert pixels.shape == (2_250, 3_000, 3)
    assert pixels[:, :100].mean() > 200 > pixels[:, -100:].mean()
