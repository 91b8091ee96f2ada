"""The PDQ photo hasher: correct pixels in (see ``image_decode``), hash and quality out.

``PdqHasher`` is the plugin's ``MediaHasher`` (``make_pdq_hasher`` builds it from the ``[pdq]``
settings); ``HmaPdqSignal`` gives python-threatexchange callers the same hashes through the
``PdqSignal`` contract.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import attrs
import numpy as np
import pdqhash
from PIL import Image
from threatexchange.signal_type.pdq.signal import PdqSignal

from hma_framework.settings import load_section
from hma_framework.types import HashResult
from hma_pdq.image_decode import RgbArray, decode_stored_pixels, open_image, upright
from hma_pdq.pdq_numpy import pdq_hash
from hma_pdq.pdq_settings import PDQ_SETTINGS, PdqSettings

if TYPE_CHECKING:
    from hma_framework.settings import Settings

#: The readings of a photo with an EXIF orientation (``HashResult.variant``).
VARIANT_DISPLAYED, VARIANT_STORED = "displayed", "stored"

__all__ = [
    "PDQ_SETTINGS",
    "VARIANT_DISPLAYED",
    "VARIANT_STORED",
    "HmaPdqSignal",
    "PdqHasher",
    "PdqSettings",
    "make_pdq_hasher",
]


@attrs.frozen
class PdqHasher:
    """Hashes photos with PDQ as they look: upright, in RGB, transparency on white.

    Returns the 64-hex-digit hash and its quality; below ``quality_threshold`` the result is
    still a hash, with ``quality_ok`` False, so it can be recorded but not matched.

    Raises ``UnhashableMediaError`` for anything that is not a readable image: unknown or
    refused formats, corrupt or truncated files, images over ``max_pixels`` (checked on the
    header, before decoding). Missing or unreadable *paths* raise ``OSError`` as usual: that is
    the caller's problem, not the media's.

    A photo whose EXIF orientation is not 1 reads two ways: the result is the hash of the
    picture as displayed (variant ``"displayed"``), with the hash of its stored pixels, what
    the reference tools and HMA 2.0 compute, as its alternate (variant ``"stored"``). Hash
    lists hold both kinds, so both are matched. Other photos give one hash, with no variant.

    Animated images (GIF, APNG, WebP) are hashed by their first frame: it is what still-image
    viewers, previews and the reference PDQ tools show and hash, so banked hashes of such
    media were made from it. Refusing them instead would let anyone dodge matching by adding
    a second frame; video signal types cover the animation itself.
    """

    settings: PdqSettings = attrs.field(factory=PdqSettings)

    def hash_file(self, path: Path) -> HashResult:
        """Hash the image at ``path``, read through Pillow in blocks, never whole into memory."""
        with open(path, "rb") as media:
            return self._hash_stream(media)

    def hash_bytes(self, data: bytes) -> HashResult:
        """Hash an encoded image held in memory."""
        return self._hash_stream(io.BytesIO(data))

    def hash_image(self, image: Image.Image) -> HashResult:
        """Hash an opened Pillow image, best not yet loaded (so JPEGs can be decoded reduced).

        The image is consumed: it is closed once its pixels have been read.
        """
        pixels, orientation = decode_stored_pixels(image, self.settings)
        if orientation == 1:
            return self._hash_pixels(pixels)
        stored = attrs.evolve(self._hash_pixels(pixels), variant=VARIANT_STORED)
        displayed = self._hash_pixels(upright(pixels, orientation))
        return attrs.evolve(displayed, variant=VARIANT_DISPLAYED, alternates=(stored,))

    def _hash_stream(self, media: BinaryIO) -> HashResult:
        return self.hash_image(open_image(media))

    def _hash_pixels(self, pixels: RgbArray) -> HashResult:
        if self.settings.bit_exact:
            value, quality = reference_pdq_hash(np.ascontiguousarray(pixels))
        else:
            value, quality = pdq_hash(pixels)
        return HashResult(
            value=value, quality=quality, quality_ok=quality >= self.settings.quality_threshold
        )


def reference_pdq_hash(pixels: RgbArray) -> tuple[str, int]:
    """``(hex hash, quality)`` from the pdqhash binding of the reference C++ implementation."""
    bits, quality = pdqhash.compute(pixels)
    return np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes().hex(), int(quality)


def make_pdq_hasher(settings: Settings) -> PdqHasher:
    """The hasher configured by the ``[pdq]`` table and ``HMA_PDQ_*`` variables."""
    return PdqHasher(load_section(settings, PDQ_SETTINGS.name, PdqSettings))


class HmaPdqSignal(PdqSignal):
    """``PdqSignal`` hashing through ``PdqHasher`` with default settings.

    pytx's own ``PdqSignal`` hands Pillow's raw arrays to pdqhash, so palette, CMYK and
    16-bit images hash far from how they look, and EXIF orientation is ignored. This subclass
    keeps the pytx contract (an empty string when the quality is under 50) but raises
    ``UnhashableMediaError`` for media that is not a readable image, as ``PdqSignal`` raises
    Pillow's errors. The name stays ``pdq``: the hashes are the same signal type.
    """

    @classmethod
    def get_name(cls) -> str:
        return "pdq"

    @classmethod
    def validate_signal_str(cls, signal_str: str) -> str:
        """Accept upper-case hex and surrounding space too; store the canonical lower case."""
        return super().validate_signal_str(signal_str.strip().lower())

    @classmethod
    def hash_from_file(cls, file: Path) -> str:
        return _signal_str(PdqHasher().hash_file(file))

    @classmethod
    def hash_from_bytes(cls, bytes_: bytes) -> str:
        return _signal_str(PdqHasher().hash_bytes(bytes_))


def _signal_str(result: HashResult) -> str:
    return result.value if result.quality_ok else ""
