"""The numpy PDQ against the reference: the pdqhash binding, the bridge photos, a plain filter.

``pdq_numpy`` filters only what the 64x64 samples need; these tests hold it to the reference's
bits (within 2, the brief's bound; in practice 0) on photos, odd sizes, grey and tiny images.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pdqhash
import pytest
from hma_pdq.hashing import PdqHasher, reference_pdq_hash
from hma_pdq.pdq_numpy import GRID, axis_bands, pdq_hash, window_size
from hma_pdq.pdq_settings import PdqSettings
from PIL import Image
from test_pdq_hashing import BRIDGE_DIR, KNOWN, hamming, needs_bridge, picture

NUMPY_FULL = PdqHasher(PdqSettings(full_resolution=True))
BIT_EXACT = PdqHasher(PdqSettings(full_resolution=True, bit_exact=True))


def plain_box_pass(values: np.ndarray, window: int) -> np.ndarray:
    """One box pass along axis 0, written from the PDQ description: a clipped moving mean."""
    half = (window + 2) // 2
    out = np.empty_like(values)
    for o in range(values.shape[0]):
        low, high = max(0, o - (window - half)), min(values.shape[0] - 1, o + half - 1)
        out[o] = values[low : high + 1].mean(axis=0)
    return out


@pytest.mark.parametrize("side", [1, 5, 63, 64, 65, 127, 129, 300, 513, 1024, 1601])
def test_axis_bands_are_two_box_passes_sampled_on_the_grid(side: int) -> None:
    identity = np.eye(side)
    twice = plain_box_pass(plain_box_pass(identity, window_size(side)), window_size(side))
    samples = ((np.arange(GRID) + 0.5) * side / GRID).astype(int)
    expected = twice[samples]  # row i: the weight of every pixel in sample i
    starts, weights = axis_bands(side)
    got = np.zeros((GRID, side))
    for row in range(GRID):
        got[row, starts[row] : starts[row] + weights.shape[1]] = weights[row]
    np.testing.assert_allclose(got, expected, atol=1e-6)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-5)  # weighted averages


@needs_bridge
@pytest.mark.parametrize(("name", "expected", "quality"), KNOWN, ids=[k[0] for k in KNOWN])
def test_bridge_photos_hash_within_two_bits_of_the_reference(
    name: str, expected: str, quality: int
) -> None:
    result = NUMPY_FULL.hash_file(BRIDGE_DIR / name)
    assert hamming(result.value, expected) <= 2
    assert result.quality is not None and abs(result.quality - quality) <= 1


def _textured(height: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (height // 8 + 2, width // 8 + 2, 3)).astype(np.uint8)
    smooth = np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC))
    noisy = smooth.astype(np.int16) + rng.integers(-6, 7, smooth.shape, dtype=np.int16)
    return np.clip(noisy, 0, 255).astype(np.uint8)


@pytest.mark.parametrize(
    ("height", "width"),
    [
        (5, 5),
        (7, 200),
        (63, 65),
        (64, 64),
        (100, 37),
        (129, 128),
        (384, 512),
        (768, 1024),
        (1004, 1600),
        (2000, 300),
    ],
)
def test_odd_sizes_hash_like_pdqhash(height: int, width: int) -> None:
    pixels = _textured(height, width, seed=height * 7 + width)
    expected, expected_quality = reference_pdq_hash(pixels)
    value, quality = pdq_hash(pixels)
    assert hamming(value, expected) <= 2
    assert abs(quality - expected_quality) <= 1


def test_grey_broadcast_pixels_hash_like_their_rgb_copy() -> None:
    grey = _textured(300, 400, seed=4)[..., 1]
    view = np.broadcast_to(grey[..., np.newaxis], (*grey.shape, 3))
    assert view.strides[2] == 0  # the one-channel shortcut is what is under test
    copy = np.ascontiguousarray(view)
    assert pdq_hash(view) == pdq_hash(copy)
    assert hamming(pdq_hash(view)[0], reference_pdq_hash(copy)[0]) <= 2


@pytest.mark.parametrize("shape", [(1, 1, 3), (4, 100, 3), (100, 4, 3)])
def test_pictures_under_five_pixels_a_side_hash_to_zero_like_the_reference(
    shape: tuple[int, int, int],
) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, shape).astype(np.uint8)
    assert reference_pdq_hash(pixels) == ("0" * 64, 0)
    assert pdq_hash(pixels) == ("0" * 64, 0)


def test_the_bit_exact_setting_hashes_through_pdqhash() -> None:
    # A flat picture's coefficients are all rounding noise, so the two implementations' bits
    # differ there (quality 0: such hashes are never matched). That tells the paths apart.
    data = io.BytesIO()
    Image.new("RGB", (50, 50), (90, 90, 90)).save(data, "PNG")
    bits, _quality = pdqhash.compute(np.full((50, 50, 3), 90, dtype=np.uint8))
    reference = np.packbits(bits.astype(np.uint8)).tobytes().hex()
    assert BIT_EXACT.hash_bytes(data.getvalue()).value == reference
    assert NUMPY_FULL.hash_bytes(data.getvalue()).value != reference


def test_the_default_hasher_is_the_numpy_one(tmp_path: Path) -> None:
    assert PdqSettings().bit_exact is False
    path = tmp_path / "photo.png"
    picture(seed=9).save(path)
    pixels = np.asarray(Image.open(path).convert("RGB"))
    assert PdqHasher().hash_file(path).value == pdq_hash(pixels)[0]
