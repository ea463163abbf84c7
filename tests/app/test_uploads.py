"""What `serve` accepts, judged from a file's content and header before anything is decoded."""

import io

import pytest
from PIL import Image

from benchmark.app.uploads import MAX_BYTES, Refused, check_upload, safe_stem


def encoded(size: tuple[int, int], kind: str, mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, format=kind)
    return buffer.getvalue()


def test_a_png_named_jpg_is_kept_with_its_real_suffix_and_size():
    upload = check_upload("holiday.jpg", encoded((40, 30), "PNG"))
    assert (upload.suffix, upload.width, upload.height) == (".png", 40, 30)


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        ("notes.jpg", b"not a photo\n", "notes.jpg: not an image the app can read"),
        ("empty.png", b"", "empty.png: the file is empty"),
        ("scan.tiff", encoded((8, 8), "TIFF"), "scan.tiff: TIFF images are not accepted"),
        ("huge.png", encoded((12000, 12000), "PNG", "1"), "huge.png: 12000x12000 pixels is too"),
    ],
)
def test_non_images_other_formats_and_huge_images_are_refused_in_one_line(name, data, expected):
    with pytest.raises(Refused) as refused:
        check_upload(name, data)
    assert str(refused.value).startswith(expected) and "\n" not in str(refused.value)


def test_too_many_bytes_are_refused_from_the_declared_size_alone():
    with pytest.raises(Refused, match=r"big.jpg: 40.0 MB is too large \(at most 25 MB\)"):
        check_upload("big.jpg", b"\xff\xd8" + bytes(100), size=40 * 2**20)
    with pytest.raises(Refused, match="too large"):
        check_upload("big.png", bytes(MAX_BYTES + 1))


def test_file_names_become_harmless_stems():
    assert safe_stem("../../etc/passwd") == "passwd"
    assert safe_stem("C:\\photos\\my bottle.JPG") == "my_bottle"
    assert safe_stem("....") == "photo"
