"""Decoding any image Pillow reads into the 8-bit RGB pixels PDQ hashes, safely and cheaply.

PDQ is defined on what a person sees, so every image is first turned into its RGB rendering:
palettes expanded, CMYK/YCbCr/LAB converted, 16-bit and float grey scaled into 0-255 rather
than clipped, transparency composited onto white. Passing Pillow's raw arrays to ``pdqhash``
instead (palette indices as grey, CMYK channels as RGB) gives hashes far from the photo's.

CMYK JPEGs: Pillow decodes them as Adobe-inverted (``CMYK;I``), the convention of Photoshop
and of libjpeg, which writes an Adobe marker with every CMYK JPEG; browsers assume the same.
``convert("RGB")`` of that is the upright picture.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable
from typing import IO

import numpy as np
import numpy.typing as npt
from PIL import Image

from hma_framework.errors import UnhashableMediaError
from hma_pdq.pdq_settings import PdqSettings

#: Reduced decoding never goes below this many pixels on either side: PDQ box-filters down to
#: 64x64, so 8x that keeps the hash within a few bits of the full-resolution one.
MIN_REDUCED_SIDE = 512

#: Transparent pixels are shown on white: the default page background of browsers and the
#: background most "flatten to JPEG" tools use, so it is how people see (and re-share) them.
#: Black would also erase the commonest transparent content: dark logos, text and line art.
ALPHA_BACKGROUND = "white"

#: Formats whose readers run an external program (EPS: Ghostscript) on hostile input.
REFUSED_FORMATS = frozenset({"EPS"})

# What Pillow raises for corrupt, truncated or unsupported data (it has no common base class).
_PILLOW_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    IndexError,
    KeyError,
    TypeError,
    ZeroDivisionError,
)

_ALPHA_MODES = frozenset({"LA", "La", "PA", "RGBA", "RGBa"})

# Modes whose pixel values ``Image.reduce`` may average (not palette indices, not bilevel, not
# the 16-bit modes it rejects).
_BOX_FILTERABLE_MODES = frozenset(
    {"L", "LA", "La", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV", "I", "F"}
)

# Modes converted band by band when reduced (their values cannot be averaged before), and the
# rows per band: about 7 MB of RGB for a 9,000-pixel-wide image.
_BANDED_MODES = frozenset({"P", "PA", "1"})
BAND_ROWS = 256

RgbArray = npt.NDArray[np.uint8]

# EXIF orientation (TIFF tag 274) -> the transpose that shows the image upright, done on the
# (rows, columns, channels) array as a view: Pillow's FLIP_LEFT_RIGHT, ROTATE_180,
# FLIP_TOP_BOTTOM, TRANSPOSE, ROTATE_270, TRANSVERSE and ROTATE_90 for tags 2..8.
_ORIENTATION_TAG = 0x0112
_UPRIGHT: dict[int, Callable[[RgbArray], RgbArray]] = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: a[::-1].swapaxes(0, 1),
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
    8: lambda a: a[:, ::-1].swapaxes(0, 1),
}


@functools.cache
def readable_formats() -> tuple[str, ...]:
    """Every format Pillow can open, except those in ``REFUSED_FORMATS``."""
    Image.init()
    return tuple(sorted(set(Image.OPEN) - REFUSED_FORMATS))


def open_image(source: IO[bytes]) -> Image.Image:
    """Read only the header of ``source``: pixels are decoded later, after the size check."""
    try:
        return Image.open(source, formats=readable_formats())
    except Image.DecompressionBombError as exc:
        raise UnhashableMediaError(f"decompression bomb refused: {exc}") from exc
    except Image.UnidentifiedImageError as exc:
        raise UnhashableMediaError("not an image format the PDQ hasher reads") from exc
    except _PILLOW_DECODE_ERRORS as exc:
        raise UnhashableMediaError(f"corrupt image header: {exc}") from exc


def decode_pixels(image: Image.Image, settings: PdqSettings) -> RgbArray:
    """The upright 8-bit RGB rendering of ``image`` (its first frame), as PDQ should see it.

    Returns a ``(height, width, 3)`` uint8 array; grey images come back as a read-only view
    repeating one channel, rotated photos as a view of the stored pixels. ``image`` is
    consumed as by ``decode_stored_pixels``.
    """
    pixels, orientation = decode_stored_pixels(image, settings)
    return upright(pixels, orientation)


def upright(pixels: RgbArray, orientation: int) -> RgbArray:
    """``pixels`` as displayed under EXIF ``orientation`` (a view; 1 and unknown tags: as is)."""
    turn = _UPRIGHT.get(orientation)
    return turn(pixels) if turn is not None else pixels


def decode_stored_pixels(image: Image.Image, settings: PdqSettings) -> tuple[RgbArray, int]:
    """The 8-bit RGB rendering of ``image`` (its first frame) as stored, and its orientation.

    The orientation is the EXIF tag (1 when absent, unreadable or ``apply_exif_orientation``
    is off); ``upright`` turns the pixels as it says. Returns a ``(height, width, 3)`` uint8
    array with rows in memory order; grey images come back as a read-only view repeating one
    channel. ``image`` is consumed: every intermediate image, ``image`` included, is closed as
    soon as the next exists, so the pixels are never held in more than two forms at once.
    """
    check_pixel_limit(image, settings.max_pixels)
    reduce = not settings.full_resolution
    try:
        if reduce:
            # JPEG only: the decoder scales by 1/2, 1/4 or 1/8 inside the IDCT, the big saving.
            # The requested size is a floor: neither side goes below MIN_REDUCED_SIDE.
            image.draft("RGB", (MIN_REDUCED_SIDE, MIN_REDUCED_SIDE))
        image.load()
        orientation = _orientation(image) if settings.apply_exif_orientation else 1
        # Shrink before converting when the mode allows: one full-size copy fewer. (Averaging
        # would blur away a single transparent colour, so those are converted first.)
        if reduce and image.mode in _BOX_FILTERABLE_MODES and "transparency" not in image.info:
            image = _replaced(image, _reduced(image))
        if reduce and image.mode in _BANDED_MODES and reduced_factor(*image.size) > 1:
            image = _replaced(image, _converted_and_reduced_in_bands(image))
        else:
            image = _replaced(image, to_rgb_or_grey(image))
        if reduce:
            image = _replaced(image, _reduced(image))
    except _PILLOW_DECODE_ERRORS as exc:
        image.close()
        raise UnhashableMediaError(f"corrupt or truncated image: {exc}") from exc
    pixels: RgbArray = np.asarray(image)
    image.close()
    if pixels.ndim == 2:
        # PDQ weighs R, G and B by 0.299/0.587/0.114: three views of one grey channel give
        # exactly the hash of the grey image converted to RGB, without the copies.
        pixels = np.broadcast_to(pixels[:, :, np.newaxis], (*pixels.shape, 3))
    return pixels, orientation if orientation in _UPRIGHT else 1


def check_pixel_limit(image: Image.Image, max_pixels: int) -> None:
    """Refuse decompression bombs from the size the header claims, before decoding."""
    width, height = image.size
    if width <= 0 or height <= 0:
        raise UnhashableMediaError(f"image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise UnhashableMediaError(
            f"image is {width}x{height} = {width * height} pixels, over the limit of "
            f"{max_pixels} (HMA_PDQ_MAX_PIXELS): refused as a possible decompression bomb"
        )


def reduced_factor(width: int, height: int) -> int:
    """The largest integer shrink that keeps both sides at least ``MIN_REDUCED_SIDE``."""
    return max(1, min(width // MIN_REDUCED_SIDE, height // MIN_REDUCED_SIDE))


def to_rgb_or_grey(image: Image.Image) -> Image.Image:
    """The "RGB" or "L" image a viewer would show for ``image``, whatever its mode."""
    mode = image.mode
    has_alpha = mode in _ALPHA_MODES or "transparency" in image.info
    if mode in ("RGB", "L") and not has_alpha:
        return image
    if mode == "1":
        return image.convert("L")
    if mode in ("I", "F") or mode.startswith("I;16"):
        return _wide_grey_to_l(image)
    if mode in ("L", "LA", "La"):
        return _on_background(image.convert("LA"), "L")
    if has_alpha:
        return _on_background(image.convert("RGBA"), "RGB")
    return image.convert("RGB")


def _reduced(image: Image.Image) -> Image.Image:
    factor = reduced_factor(*image.size)
    return image.reduce(factor) if factor > 1 else image


def _converted_and_reduced_in_bands(image: Image.Image) -> Image.Image:
    """``to_rgb_or_grey`` then ``_reduced``, a band of rows at a time.

    For modes whose values cannot be averaged (palette indices, bilevel), converting the whole
    image first would hold a full-size RGB copy: 243 MB for a 9,000x9,000 palette PNG, on top
    of its 81 MB of indices. Bands a whole number of reduction boxes high give exactly the
    same pixels, since each box lies in one band, with only one band converted at a time.
    """
    factor = reduced_factor(*image.size)
    width, height = image.size
    band = factor * max(1, BAND_ROWS // factor)
    reduced: Image.Image | None = None
    for top in range(0, height, band):
        piece = image.crop((0, top, width, min(top + band, height)))
        rendered = to_rgb_or_grey(piece)
        small = rendered.reduce(factor)
        if reduced is None:
            reduced = Image.new(small.mode, (-(-width // factor), -(-height // factor)))
        reduced.paste(small, (0, top // factor))
        for done in {id(x): x for x in (piece, rendered, small)}.values():
            done.close()
    assert reduced is not None  # the image has at least one row (checked before decoding)
    return reduced


def _replaced(old: Image.Image, new: Image.Image) -> Image.Image:
    if new is not old:
        old.close()  # releases the pixel memory now, not whenever the caller lets go
    return new


def _orientation(image: Image.Image) -> int:
    # getexif() also reads an XMP tiff:Orientation, as ImageOps.exif_transpose does.
    value = image.getexif().get(_ORIENTATION_TAG, 1)
    return value if isinstance(value, int) else 1


def _on_background(image: Image.Image, mode: str) -> Image.Image:
    background = Image.new(mode, image.size, ALPHA_BACKGROUND)
    background.paste(image, (0, 0), image)  # the image's own alpha is the mask
    image.close()
    return background


def _wide_grey_to_l(image: Image.Image) -> Image.Image:
    """16-bit, 32-bit and float grey scaled into 0-255, where Pillow's convert would clip.

    16-bit modes use their declared full scale, 65535. For 32-bit integer and float images the
    full scale is the smallest conventional one that holds every value (1.0 for float, 255,
    65535); values outside all of them (negative, huge) are stretched from minimum to maximum.
    PDQ's bits ignore brightness offset and scale, so this choice only moves the quality score.
    """
    values = np.asarray(image).astype(np.float32)
    values[~np.isfinite(values)] = 0.0
    low, high = float(values.min()), float(values.max())
    offset = 0.0
    if image.mode.startswith("I;16"):
        full_scale = 65535.0
    elif image.mode == "F" and low >= 0.0 and high <= 1.0:
        full_scale = 1.0
    elif low >= 0.0 and high <= 255.0:
        full_scale = 255.0
    elif low >= 0.0 and high <= 65535.0:
        full_scale = 65535.0
    else:
        offset, full_scale = low, max(high - low, 1.0)
    values -= offset
    values *= 255.0 / full_scale
    np.rint(values, out=values)
    np.clip(values, 0.0, 255.0, out=values)
    return Image.fromarray(values.astype(np.uint8))
