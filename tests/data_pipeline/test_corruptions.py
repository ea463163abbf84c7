"""The corruptions are deterministic image transforms whose strength grows with the severity."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from data_pipeline.corruptions import (
    CORRUPTIONS,
    MAX_SEVERITY,
    SEVERITIES,
    check_corruption,
    corrupt,
    image_key,
)


def photo_like(size: int = 64, seed: int = 0) -> np.ndarray:
    """A smooth colour gradient under texture at three scales: no period the sampling could hit."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    base = np.stack([120 + 60 * x, 110 + 50 * y, 130 - 40 * x * y], -1)
    texture = sum(
        gaussian_filter(rng.normal(0, 1, (size, size, 3)), (s, s, 0)) * s * 12 for s in (1, 2, 4)
    )
    return np.clip(base + texture, 0, 255).astype(np.float32)


IMAGES = np.stack([photo_like(64, seed) for seed in range(3)])
KEYS = [image_key(f"hash{i}") for i in range(3)]


def test_the_required_corruptions_have_five_levels_each():
    required = {
        "gaussian_noise",
        "defocus_blur",
        "motion_blur",
        "jpeg_compression",
        "low_resolution",
        "brightness",
        "contrast",
        "colour_cast",
        "occlusion",
    }
    assert required <= set(CORRUPTIONS)
    assert all(len(SEVERITIES[name]) == MAX_SEVERITY for name in CORRUPTIONS)


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_a_corruption_is_deterministic_and_independent_of_the_batch(name):
    first = corrupt(IMAGES, name, 3, KEYS)
    np.testing.assert_array_equal(first, corrupt(IMAGES, name, 3, KEYS))
    alone = corrupt(IMAGES[2:], name, 3, KEYS[2:])  # the same image in another batch
    np.testing.assert_array_equal(first[2], alone[0])


@pytest.mark.parametrize("name", CORRUPTIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_a_corruption_keeps_shape_dtype_and_range(name, dtype):
    images = np.rint(IMAGES).astype(dtype) if dtype is np.uint8 else IMAGES
    for severity in (1, MAX_SEVERITY):
        out = corrupt(images, name, severity, KEYS)
        assert out.shape == images.shape and out.dtype == images.dtype
        assert out.min() >= 0 and out.max() <= 255
        assert not np.array_equal(out, images)  # at 64 px every corruption changes something


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_the_distance_from_clean_grows_with_severity(name):
    distances = [
        float(np.abs(corrupt(IMAGES, name, s, KEYS) - IMAGES).mean())
        for s in range(1, MAX_SEVERITY + 1)
    ]
    assert all(np.diff(distances) > 0), distances


def test_random_draws_follow_the_image_key():
    noisy = corrupt(IMAGES[:1], "gaussian_noise", 2, [1])
    assert not np.array_equal(noisy, corrupt(IMAGES[:1], "gaussian_noise", 2, [2]))


@pytest.mark.parametrize(("name", "severity"), [("fog", 1), ("contrast", 0), ("contrast", 6)])
def test_an_unknown_corruption_or_severity_is_refused(name, severity):
    with pytest.raises(ValueError, match="corruption|severity"):
        check_corruption(name, severity)
