"""The ``[pdq]`` settings section (``HMA_PDQ_*`` variables) of the PDQ photo hasher."""

from __future__ import annotations

from typing import Any

import attrs

from hma_framework.settings import FieldValueError
from hma_framework.types import SettingsSection

#: Pillow's own default ``Image.MAX_IMAGE_PIXELS`` (about 89.5 megapixels). Enough for 48-64 MP
#: phone and camera photos; a decoded image this size is ~360 MB of RGBX before hashing.
DEFAULT_MAX_PIXELS = 89_478_485

#: Pillow raises ``DecompressionBombError`` on its own above twice its ``MAX_IMAGE_PIXELS``, so a
#: larger limit here could never take effect: refuse it at startup instead of surprising later.
PILLOW_HARD_PIXEL_LIMIT = 2 * DEFAULT_MAX_PIXELS


def _between(minimum: int, maximum: int) -> Any:
    def check(_instance: object, attribute: attrs.Attribute[Any], value: int) -> None:
        if not minimum <= value <= maximum:
            raise FieldValueError(
                attribute.name, f"must be between {minimum} and {maximum}, got {value}"
            )

    return check


@attrs.frozen
class PdqSettings:
    quality_threshold: int = attrs.field(
        default=50,
        validator=_between(0, 100),
        metadata={
            "help": "PDQ quality (0-100) below which a photo's hash is recorded but not "
            "matched: flat or featureless images give unreliable hashes."
        },
    )
    apply_exif_orientation: bool = attrs.field(
        default=True,
        metadata={
            "help": "Hash photos with an EXIF orientation both ways, as displayed (turned as "
            "the tag says) and as stored (what reference tools hash), and match either. Off: "
            "stored pixels only."
        },
    )
    full_resolution: bool = attrs.field(
        default=False,
        metadata={
            "help": "Hash every pixel. Off: large images are decoded (JPEG) or box-filtered to "
            "no less than 512 px a side first, ~10x faster and a few bits from the full hash."
        },
    )
    bit_exact: bool = attrs.field(
        default=False,
        metadata={
            "help": "Hash with the pdqhash binding of the reference C++ (bit-exact, ~10x the "
            "CPU). Off: the plugin's numpy PDQ, which filters only what the 64x64 samples "
            "need; same bits but for float rounding (0-2 bits)."
        },
    )
    max_pixels: int = attrs.field(
        default=DEFAULT_MAX_PIXELS,
        validator=_between(1, PILLOW_HARD_PIXEL_LIMIT),
        metadata={
            "help": "Images whose header claims more pixels than this are refused as "
            "decompression bombs, before any pixel is decoded."
        },
    )
    index_threads: int = attrs.field(
        default=1,
        validator=_between(1, 64),
        metadata={
            "help": "Threads faiss may use per index query; 1 keeps concurrent queries "
            "(API threads, workers) from contending for the cores."
        },
    )


PDQ_SETTINGS = SettingsSection("pdq", PdqSettings)
