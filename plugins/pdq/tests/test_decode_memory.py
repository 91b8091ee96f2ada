"""Large palette and bilevel images decode reduced without a full-size RGB copy.

A 9,000x9,000 palette PNG once raised an API process by about 390 MB (81 MB of indices plus a
243 MB RGB conversion); converted band by band it stays near the indices alone.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hma_pdq.image_decode import BAND_ROWS, decode_pixels, reduced_factor, to_rgb_or_grey
from hma_pdq.pdq_settings import PdqSettings
from PIL import Image

REDUCED = PdqSettings()


def _palette_image(width: int, height: int, *, transparent: bool = False) -> Image.Image:
    rng = np.random.default_rng(7)
    blocks = rng.integers(0, 256, size=(height // 50 + 1, width // 50 + 1), dtype=np.uint8)
    indices = np.kron(blocks, np.ones((50, 50), dtype=np.uint8))[:height, :width]
    image = Image.fromarray(np.ascontiguousarray(indices), "P")
    image.putpalette(rng.integers(0, 256, size=768, dtype=np.uint8).tolist())
    if transparent:
        image.info["transparency"] = 3
    return image


def _whole_then_reduced(image: Image.Image) -> np.ndarray:
    """What decoding did before: convert the whole image, then reduce it."""
    rendered = to_rgb_or_grey(image.copy())
    return np.asarray(rendered.reduce(reduced_factor(*rendered.size)))


@pytest.mark.parametrize(
    ("mode", "size"),
    [("P", (3000, 1700)), ("P+transparency", (2100, 2900)), ("1", (2600, 1111))],
)
def test_banded_conversion_gives_the_same_pixels(mode: str, size: tuple[int, int]) -> None:
    image = _palette_image(*size, transparent=mode == "P+transparency")
    if mode == "1":
        image = image.convert("1")
    assert size[1] > BAND_ROWS * 2, "several bands, the last one partial"
    expected = _whole_then_reduced(image)
    decoded = decode_pixels(image, REDUCED)
    assert decoded.shape[:2] == expected.shape[:2]
    if expected.ndim == 2:
        expected = np.broadcast_to(expected[:, :, np.newaxis], (*expected.shape, 3))
    assert np.array_equal(decoded, expected)


def test_a_9000_pixel_palette_png_decodes_in_a_fraction_of_its_rgb_size(tmp_path: Path) -> None:
    path = tmp_path / "palette.png"
    _palette_image(9000, 9000).save(path, compress_level=1)
    script = textwrap.dedent(
        """
        import os, sys
        from hma_pdq.image_decode import decode_pixels, open_image
        from hma_pdq.pdq_settings import PdqSettings
        def status_mib(field):
            with open("/proc/self/status") as status:
                for line in status:
                    if line.startswith(field + ":"):
                        return int(line.split()[1]) / 1024
        before = status_mib("VmRSS")  # resident now, after every import
        with open(sys.argv[1], "rb") as source:
            pixels = decode_pixels(open_image(source), PdqSettings())
        print(pixels.shape[0], pixels.shape[1], round(status_mib("VmHWM") - before))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    height, width, growth_mib = map(int, result.stdout.split())
    print(f"9000x9000 palette PNG: peak RSS growth {growth_mib} MiB (was ~390 MiB)")
    assert (height, width) == (530, 530)
    # The indices alone are 77 MiB; a full RGB copy would add 232 MiB more.
    assert growth_mib < 160, f"decoding grew the process by {growth_mib} MiB"
