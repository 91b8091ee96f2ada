"""The PDQ photo hasher: reference hashes, every Pillow mode, EXIF, reduced decoding, hostility.

Pictures are generated with Pillow in ``tmp_path``; the bridge photos and their known hashes
come from ``shared/data/pdq-bridge-mods`` beside the repository.
"""

from __future__ import annotations

import io
import re
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hma_pdq.hashing import PDQ_SETTINGS, HmaPdqSignal, PdqHasher, make_pdq_hasher
from hma_pdq.image_decode import (
    MIN_REDUCED_SIDE,
    decode_pixels,
    open_image,
    readable_formats,
)
from hma_pdq.pdq_settings import DEFAULT_MAX_PIXELS, PdqSettings
from PIL import Image, ImageDraw, ImageOps
from threatexchange.signal_type.pdq.signal import PdqSignal

from hma_framework.errors import UnhashableMediaError
from hma_framework.settings import SettingsError, iter_setting_fields, load_settings
from hma_framework.testing import check_signal_type_record
from hma_framework.types import HashResult, SignalTypeRecord

REPO = Path(__file__).resolve().parents[3]
# CI clones the repository with shared/ beside it (here: /work/main and /work/shared); a
# worktree one level further down (/work/wt/<branch>) finds it one level up.
BRIDGE_DIR = next(
    (
        folder / "shared" / "data" / "pdq-bridge-mods"
        for folder in (REPO.parent, REPO.parent.parent)
        if (folder / "shared" / "data" / "pdq-bridge-mods").is_dir()
    ),
    REPO.parent / "shared" / "data" / "pdq-bridge-mods",
)
PDQ_MATCH_THRESHOLD = 31
# The reference: pdqhash (the C++ implementation) on every pixel. The default hasher uses the
# plugin's numpy PDQ over a reduced decode.
FULL = PdqHasher(PdqSettings(full_resolution=True, bit_exact=True))
REDUCED = PdqHasher(PdqSettings())


def hamming(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def picture(width: int = 384, height: int = 288, seed: int = 0) -> Image.Image:
    """A photo-like RGB picture: smooth colour gradients, mild noise, a few solid shapes."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    phase = rng.uniform(0, 6.28, 3)
    channels = [
        128 + 90 * np.sin(x / width * (2 + i) + phase[i]) * np.cos(y / height * (3 - i))
        for i in range(3)
    ]
    pixels = np.dstack(channels) + rng.normal(0, 6, (height, width, 3))
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(8):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        size = int(rng.integers(min(width, height) // 10, min(width, height) // 3))
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        draw.ellipse((x0, y0, x0 + size, y0 + size), fill=color)
    return image


def rgb_hash(pixels: np.ndarray) -> str:
    """The hash of ``pixels`` (an RGB array) saved losslessly as a plain RGB PNG."""
    return FULL.hash_bytes(encode(Image.fromarray(pixels.astype(np.uint8)), "PNG")).value


def on_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha.astype(np.float64)[..., np.newaxis] / 255.0
    return np.rint(rgb * a + 255.0 * (1.0 - a)).astype(np.uint8)


def naive_pdq(data: bytes) -> str:
    """pdqhash on Pillow's raw array (python-threatexchange 1.2's way): the wrong rendering."""
    import pdqhash

    pixels = np.asarray(Image.open(io.BytesIO(data)))
    if pixels.ndim == 2:
        pixels = np.dstack([pixels] * 3)
    bits, _quality = pdqhash.compute(np.ascontiguousarray(pixels[..., :3], dtype=np.uint8))
    return np.packbits(bits.astype(np.uint8)).tobytes().hex()


# --- the reference photos -------------------------------------------------------------------


def _known_hashes() -> list[tuple[str, str, int]]:
    if not BRIDGE_DIR.is_dir():
        return []
    table = (BRIDGE_DIR / "README.md").read_text()
    rows = re.findall(r"^\| (\S+\.jpg) \| \d+x\d+ \| ([0-9a-f]{64}) \| (\d+) \|$", table, re.M)
    return [(name, value, int(quality)) for name, value, quality in rows]


KNOWN = _known_hashes()
needs_bridge = pytest.mark.skipif(
    not KNOWN, reason=f"reference photos not found at {BRIDGE_DIR} (shared/ beside the repo)"
)


@needs_bridge
def test_readme_lists_all_twelve_bridge_photos() -> None:
    assert len(KNOWN) == 12
    assert all((BRIDGE_DIR / name).is_file() for name, _, _ in KNOWN)


@needs_bridge
@pytest.mark.parametrize(("name", "expected", "quality"), KNOWN, ids=[k[0] for k in KNOWN])
def test_bridge_photos_hash_to_their_known_values(name: str, expected: str, quality: int) -> None:
    full = FULL.hash_file(BRIDGE_DIR / name)
    assert full == HashResult(value=expected, quality=quality, quality_ok=True)
    reduced = REDUCED.hash_file(BRIDGE_DIR / name)
    assert hamming(reduced.value, expected) <= 2
    assert reduced.quality_ok


@needs_bridge
def test_every_edited_bridge_photo_matches_the_original() -> None:
    for hasher in (FULL, REDUCED):
        original = hasher.hash_file(BRIDGE_DIR / "aaa-orig.jpg").value
        for name, _, _ in KNOWN:
            distance = hamming(hasher.hash_file(BRIDGE_DIR / name).value, original)
            assert distance <= PDQ_MATCH_THRESHOLD, f"{name} is {distance} bits away"


@needs_bridge
def test_an_enlarged_bridge_photo_decoded_reduced_stays_near_the_known_hash(
    tmp_path: Path,
) -> None:
    # The photos themselves are too small to be decoded reduced; at 2x they are (1/2 scale).
    with Image.open(BRIDGE_DIR / "aaa-orig.jpg") as original:
        big = original.resize((original.width * 2, original.height * 2), Image.Resampling.LANCZOS)
    path = tmp_path / "bridge-3200.jpg"
    big.save(path, quality=95)
    with Image.open(path) as reopened:
        pixels = decode_pixels(reopened, PdqSettings())
    assert pixels.shape[:2] == (1004, 1600)  # really decoded at half size
    expected = dict((name, value) for name, value, _ in KNOWN)["aaa-orig.jpg"]
    assert hamming(REDUCED.hash_file(path).value, expected) <= 4
    assert hamming(FULL.hash_file(path).value, expected) <= 4


# --- hash format, quality -------------------------------------------------------------------


def test_hash_is_64_lowercase_hex_digits_pdqsignal_accepts() -> None:
    result = FULL.hash_bytes(encode(picture(), "PNG"))
    assert re.fullmatch("[0-9a-f]{64}", result.value)
    assert PdqSignal.validate_signal_str(result.value) == result.value
    assert result.quality is not None and result.quality >= 50 and result.quality_ok


def test_featureless_image_is_hashed_with_low_quality_not_refused() -> None:
    result = REDUCED.hash_bytes(encode(Image.new("RGB", (200, 150), (90, 90, 90)), "PNG"))
    assert re.fullmatch("[0-9a-f]{64}", result.value)
    assert result.quality == 0
    assert result.quality_ok is False


def test_quality_threshold_is_inclusive() -> None:
    # A faint picture: quality well inside 1..99, so both sides of the threshold are reachable.
    faint = Image.eval(picture(seed=3).convert("L"), lambda v: 64 + v // 2)
    data = encode(faint, "PNG")
    quality = REDUCED.hash_bytes(data).quality
    assert quality is not None and 0 < quality < 100
    at = PdqHasher(PdqSettings(quality_threshold=quality)).hash_bytes(data)
    above = PdqHasher(PdqSettings(quality_threshold=quality + 1)).hash_bytes(data)
    assert at.quality_ok is True
    assert above.quality_ok is False
    assert at.value == above.value


# --- every mode hashes like its RGB rendering -----------------------------------------------

PIC = picture()
RGB = np.asarray(PIC)
GREY = np.asarray(PIC.convert("L"))
GREY_RGB = np.dstack([GREY] * 3)
# Opaque squares alternating with squares fading from transparent (left) to opaque (right):
# the background shows through in a pattern PDQ sees (white and black differ by ~60 bits).
_ROWS, _COLUMNS = np.mgrid[0 : PIC.height, 0 : PIC.width]
ALPHA = (
    np.where((_ROWS // 72 + _COLUMNS // 96) % 2 == 0, 255, np.linspace(0, 255, PIC.width))
    .round()
    .astype(np.uint8)
)
PALETTED = PIC.quantize(64)
PALETTED_RGB = np.asarray(PALETTED.convert("RGB"))
PALETTE_ALPHA = Image.fromarray(np.dstack([RGB, ALPHA])).convert("PA")
# The palette lookup is Pillow's; the compositing the expectation makes is our own.
PALETTE_ALPHA_RGB_AND_ALPHA = (
    np.asarray(PALETTE_ALPHA.convert("RGB")),
    np.asarray(PALETTE_ALPHA.getchannel("A")),
)
BILEVEL = PIC.convert("L").point(lambda v: 255 if v > 128 else 0).convert("1", dither=None)


def _palette_with_transparent_index() -> tuple[Image.Image, np.ndarray]:
    index = int(np.bincount(np.asarray(PALETTED).ravel()).argmax())  # the commonest colour
    image = PALETTED.copy()
    image.info["transparency"] = index
    rendered = PALETTED_RGB.copy()
    rendered[np.asarray(PALETTED) == index] = 255
    return image, rendered


def _wide_grey(mode: str, values: np.ndarray) -> Image.Image:
    if mode == "F":
        return Image.fromarray(values.astype(np.float32))
    image = Image.fromarray(values.astype(np.int32))  # mode "I"
    return image if mode == "I" else image.convert(mode)


# name -> (encoded file, the plain RGB pixels it should hash like)
MODE_CASES: dict[str, Callable[[], tuple[bytes, np.ndarray]]] = {
    "1 png": lambda: (encode(BILEVEL, "PNG"), np.dstack([np.asarray(BILEVEL.convert("L"))] * 3)),
    "L png": lambda: (encode(PIC.convert("L"), "PNG"), GREY_RGB),
    "L jpeg": lambda: (encode(PIC.convert("L"), "JPEG", quality=100), GREY_RGB),
    "LA png": lambda: (
        encode(Image.fromarray(np.dstack([GREY, ALPHA])), "PNG"),
        on_white(GREY_RGB, ALPHA),
    ),
    "P png": lambda: (encode(PALETTED, "PNG"), PALETTED_RGB),
    "P gif": lambda: (encode(PALETTED, "GIF"), PALETTED_RGB),
    "P png transparent index": lambda: (
        encode(_palette_with_transparent_index()[0], "PNG"),
        _palette_with_transparent_index()[1],
    ),
    "PA tiff": lambda: (encode(PALETTE_ALPHA, "TIFF"), on_white(*PALETTE_ALPHA_RGB_AND_ALPHA)),
    "RGBA png": lambda: (
        encode(Image.fromarray(np.dstack([RGB, ALPHA])), "PNG"),
        on_white(RGB, ALPHA),
    ),
    "RGBA webp": lambda: (
        encode(Image.fromarray(np.dstack([RGB, ALPHA])), "WEBP", lossless=True),
        on_white(RGB, ALPHA),
    ),
    "RGB png transparent colour": lambda: (
        encode(PALETTED.convert("RGB"), "PNG", transparency=tuple(map(int, PALETTED_RGB[0, 0]))),
        np.where((PALETTED_RGB[0, 0] == PALETTED_RGB).all(axis=2)[..., None], 255, PALETTED_RGB),
    ),
    "CMYK jpeg": lambda: (encode(PIC.convert("CMYK"), "JPEG", quality=95), RGB),
    "CMYK tiff": lambda: (encode(PIC.convert("CMYK"), "TIFF"), RGB),
    "YCbCr tiff": lambda: (encode(PIC.convert("YCbCr"), "TIFF"), RGB),
    "LAB tiff": lambda: (encode(PIC.convert("LAB"), "TIFF"), RGB),
    "I;16 png": lambda: (encode(_wide_grey("I;16", GREY.astype(np.int32) * 257), "PNG"), GREY_RGB),
    "I;16B tiff": lambda: (
        encode(_wide_grey("I;16B", GREY.astype(np.int32) * 257), "TIFF"),
        GREY_RGB,
    ),
    "I tiff 16-bit values": lambda: (
        encode(_wide_grey("I", GREY.astype(np.int32) * 257), "TIFF"),
        GREY_RGB,
    ),
    "I tiff negative values": lambda: (
        encode(_wide_grey("I", GREY.astype(np.int32) * 1000 - 90_000), "TIFF"),
        GREY_RGB,
    ),
    "F tiff unit range": lambda: (encode(_wide_grey("F", GREY / 255.0), "TIFF"), GREY_RGB),
    "F tiff 8-bit range": lambda: (encode(_wide_grey("F", GREY), "TIFF"), GREY_RGB),
}


@pytest.mark.parametrize("case", sorted(MODE_CASES))
def test_every_mode_hashes_like_its_plain_rgb_rendering(case: str) -> None:
    data, rendered = MODE_CASES[case]()
    expected_mode = case.split()[0]
    with Image.open(io.BytesIO(data)) as opened:
        assert opened.mode == expected_mode  # the file really is in the mode under test
    assert hamming(FULL.hash_bytes(data).value, rgb_hash(rendered)) <= 2


# Modes where Pillow's raw array is not the picture: a test that fed it to pdqhash would fail.
RAW_ARRAY_IS_WRONG = (
    "P png",
    "P png transparent index",
    "RGBA png",
    "RGB png transparent colour",
    "CMYK jpeg",
    "YCbCr tiff",
    "LAB tiff",
)


@pytest.mark.parametrize("case", RAW_ARRAY_IS_WRONG)
def test_the_mode_cases_tell_right_from_wrong(case: str) -> None:
    data, rendered = MODE_CASES[case]()
    assert hamming(naive_pdq(data), rgb_hash(rendered)) > 8


def test_a_cmyk_jpeg_is_not_inverted() -> None:
    data = encode(PIC.convert("CMYK"), "JPEG", quality=95)
    with Image.open(io.BytesIO(data)) as opened:
        assert "adobe" in opened.info  # libjpeg marks CMYK JPEGs as Adobe (inverted) ones
    ours = FULL.hash_bytes(data).value
    assert hamming(ours, rgb_hash(RGB)) <= 2
    inverted = rgb_hash(255 - RGB)
    assert hamming(ours, inverted) > 200


@pytest.mark.parametrize(
    ("mode", "source"),
    [("RGBa", "RGBA"), ("La", "LA"), ("HSV", "RGB"), ("RGBX", "RGB"), ("PA", "RGBA")],
)
def test_modes_no_file_format_stores_hash_like_their_rendering(mode: str, source: str) -> None:
    rgba = Image.fromarray(np.dstack([RGB, ALPHA]))
    image = rgba.convert(source).convert(mode)
    # What a viewer shows: Pillow's own conversion to RGBA (un-premultiplying, palette
    # lookup, HSV to RGB), then alpha composited onto white by numpy.
    shown = np.asarray(image.convert("RGBA") if mode != "La" else image.convert("LA"))
    if mode == "La":
        shown = np.dstack([shown[..., 0]] * 3 + [shown[..., 1]])
    expected = on_white(shown[..., :3], shown[..., 3])
    assert hamming(FULL.hash_image(image).value, rgb_hash(expected)) <= 2


def test_transparency_is_composited_onto_white_not_black() -> None:
    data = encode(Image.fromarray(np.dstack([RGB, ALPHA])), "PNG")
    on_black = np.rint(RGB * (ALPHA[..., np.newaxis] / 255.0))
    assert hamming(FULL.hash_bytes(data).value, rgb_hash(on_black)) > 31


def test_transparency_is_composited_not_dropped() -> None:
    # Dark content under alpha 0 must not show: on white, the picture is blank white.
    hidden = Image.fromarray(np.dstack([RGB, np.zeros_like(GREY)]))
    result = FULL.hash_bytes(encode(hidden, "PNG"))
    assert result.quality == 0  # a uniform image, nothing to hash
    assert hamming(result.value, FULL.hash_bytes(encode(PIC, "PNG")).value) > 31


# --- EXIF orientation -----------------------------------------------------------------------


def with_orientation(image: Image.Image, orientation: int, fmt: str = "JPEG") -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    options = {"quality": 95} if fmt == "JPEG" else {}
    return encode(image, fmt, exif=exif, **options)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_is_applied_exactly_as_exif_transpose_does(orientation: int) -> None:
    data = with_orientation(PIC, orientation)
    with Image.open(io.BytesIO(data)) as reference:
        upright = np.asarray(ImageOps.exif_transpose(reference).convert("RGB"))
    with Image.open(io.BytesIO(data)) as image:
        pixels = decode_pixels(image, PdqSettings(full_resolution=True))
    assert pixels.shape == upright.shape
    assert np.array_equal(pixels, upright)
    if orientation in (5, 6, 7, 8):
        assert pixels.shape[:2] == (PIC.width, PIC.height)


@pytest.mark.parametrize(
    ("orientation", "stored_as"),
    [(6, Image.Transpose.ROTATE_90), (8, Image.Transpose.ROTATE_270)],
)
def test_a_sideways_photo_hashes_like_its_upright_pixels(
    orientation: int, stored_as: Image.Transpose
) -> None:
    # A camera held sideways stores the pixels turned and says how to turn them back.
    stored = PIC.transpose(stored_as)
    data = with_orientation(stored, orientation, fmt="PNG")
    upright = rgb_hash(RGB)
    assert hamming(REDUCED.hash_bytes(data).value, upright) == 0
    ignoring = PdqHasher(PdqSettings(apply_exif_orientation=False)).hash_bytes(data).value
    assert ignoring == rgb_hash(np.asarray(stored))
    assert hamming(ignoring, upright) > PDQ_MATCH_THRESHOLD


@pytest.mark.parametrize("orientation", range(2, 9))
def test_a_tagged_photo_gives_its_displayed_hash_with_its_stored_one(orientation: int) -> None:
    data = with_orientation(PIC, orientation, fmt="PNG")
    with Image.open(io.BytesIO(data)) as image:
        shown = rgb_hash(np.asarray(ImageOps.exif_transpose(image).convert("RGB")))
    result = REDUCED.hash_bytes(data)
    assert result.variant == "displayed" and hamming(result.value, shown) <= 2
    [stored] = result.alternates
    assert stored.variant == "stored"
    assert hamming(stored.value, rgb_hash(RGB)) <= 2  # PIC's pixels, as saved
    assert hamming(stored.value, shown) > PDQ_MATCH_THRESHOLD  # two readings, far apart
    assert stored.quality_ok and stored.alternates == ()
    assert result.readings() == (result, stored)


@pytest.mark.parametrize("orientation", [None, 1, 0, 9])
def test_an_untagged_or_upright_photo_gives_one_hash(orientation: int | None) -> None:
    data = encode(PIC, "PNG") if orientation is None else with_orientation(PIC, orientation, "PNG")
    result = REDUCED.hash_bytes(data)
    assert (result.variant, result.alternates) == ("", ())
    assert hamming(result.value, rgb_hash(RGB)) <= 2


def test_exif_off_hashes_the_stored_pixels_only() -> None:
    data = with_orientation(PIC.transpose(Image.Transpose.ROTATE_90), 6, fmt="PNG")
    result = PdqHasher(PdqSettings(apply_exif_orientation=False)).hash_bytes(data)
    assert (result.variant, result.alternates) == ("", ())


# --- reduced decoding -----------------------------------------------------------------------


def _blank_file(tmp_path: Path, size: tuple[int, int], fmt: str, mode: str = "RGB") -> Path:
    image = Image.new(mode, size)
    ImageDraw.Draw(image).ellipse((0, 0, size[0] // 2, size[1] // 2), fill=200)
    path = tmp_path / f"blank-{size[0]}x{size[1]}-{mode}.{fmt.lower()}"
    image.save(path, fmt)
    return path


@pytest.mark.parametrize(
    ("size", "fmt", "mode", "reduced"),
    [
        ((4000, 3000), "JPEG", "RGB", (1000, 750)),  # JPEG decoded at 1/4 scale
        ((1024, 1024), "JPEG", "RGB", (512, 512)),  # exactly the floor
        ((1023, 4000), "JPEG", "RGB", (1023, 4000)),  # halving would go under 512
        ((4100, 1100), "JPEG", "L", (2050, 550)),  # the short side rules
        ((6000, 600), "JPEG", "CMYK", (6000, 600)),
        ((3000, 1100), "PNG", "RGB", (1500, 550)),  # other formats: box-filtered after decoding
        ((2100, 2100), "PNG", "P", (525, 525)),  # palette: converted first, then filtered
        ((1600, 1600), "TIFF", "I;16", (534, 534)),  # partial boxes round up
    ],
)
def test_reduced_decoding_never_goes_under_512_pixels_a_side(
    tmp_path: Path,
    size: tuple[int, int],
    fmt: str,
    mode: str,
    reduced: tuple[int, int],
) -> None:
    path = _blank_file(tmp_path, size, fmt, mode)
    with Image.open(path) as image:
        pixels = decode_pixels(image, PdqSettings())
    assert (pixels.shape[1], pixels.shape[0]) == reduced
    assert min(pixels.shape[:2]) >= min(MIN_REDUCED_SIDE, *size)
    with Image.open(path) as image:
        full = decode_pixels(image, PdqSettings(full_resolution=True))
    assert (full.shape[1], full.shape[0]) == size


def test_reduced_decoding_stays_within_a_few_bits_of_full_resolution(tmp_path: Path) -> None:
    path = tmp_path / "big.jpg"
    picture(800, 600, seed=1).resize((3200, 2400), Image.Resampling.BICUBIC).save(path, quality=90)
    full, reduced = FULL.hash_file(path), REDUCED.hash_file(path)
    assert hamming(full.value, reduced.value) <= 8
    assert full.quality_ok and reduced.quality_ok


def test_decoding_releases_the_image_it_was_given() -> None:
    image = Image.open(io.BytesIO(encode(PIC.convert("RGBA"), "PNG")))
    decode_pixels(image, PdqSettings(full_resolution=True))
    with pytest.raises(ValueError, match="closed image"):
        image.getpixel((0, 0))


def _peak_rss_growth_kib(script: str, *args: str) -> list[str]:
    preamble = (
        "import resource, sys\n"
        "from pathlib import Path\n"
        "from hma_pdq.hashing import PdqHasher, PdqSettings\n"
        "def peak(): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
    )
    return subprocess.run(
        [sys.executable, "-c", preamble + script, *args], capture_output=True, text=True, check=True
    ).stdout.split()


def test_hashing_a_path_streams_it_rather_than_reading_it_whole(tmp_path: Path) -> None:
    path = tmp_path / "padded.jpg"
    warm_up = tmp_path / "small.jpg"
    PIC.save(warm_up, quality=90)
    with path.open("wb") as handle:
        handle.write(encode(PIC, "JPEG", quality=90))
        handle.truncate(256 * 1024 * 1024)  # 256 MiB of (sparse) trailing bytes after the JPEG
    out = _peak_rss_growth_kib(
        "hasher = PdqHasher()\n"
        "hasher.hash_file(Path(sys.argv[2]))\n"
        "before = peak()\n"
        "print(hasher.hash_file(Path(sys.argv[1])).value, peak() - before)\n",
        str(path),
        str(warm_up),
    )
    assert out[0] == REDUCED.hash_bytes(encode(PIC, "JPEG", quality=90)).value
    assert int(out[1]) < 32 * 1024, f"peak RSS grew by {out[1]} KiB"


def test_a_large_jpeg_is_never_decoded_at_full_size(tmp_path: Path) -> None:
    path = tmp_path / "large.jpg"
    picture(400, 300, seed=5).resize((4000, 3000)).save(path, quality=90)
    warm_up = tmp_path / "small.jpg"
    PIC.save(warm_up, quality=90)
    out = _peak_rss_growth_kib(
        "hasher = PdqHasher()\n"
        "hasher.hash_file(Path(sys.argv[2]))\n"
        "before = peak()\n"
        "print(hasher.hash_file(Path(sys.argv[1])).value, peak() - before)\n",
        str(path),
        str(warm_up),
    )
    # One full-size decoded copy alone would be 4000 x 3000 x 4 bytes = 46 MiB.
    assert int(out[1]) < 32 * 1024, f"peak RSS grew by {out[1]} KiB"


# --- hostile and broken media ---------------------------------------------------------------


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` and which has no pixel data at all."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def test_pixel_limit_is_inclusive_and_configurable() -> None:
    data = encode(PIC.resize((100, 100)), "PNG")
    assert PdqHasher(PdqSettings(max_pixels=10_000)).hash_bytes(data).quality is not None
    with pytest.raises(UnhashableMediaError, match=r"100x100 = 10000 pixels.*limit of 9999"):
        PdqHasher(PdqSettings(max_pixels=9_999)).hash_bytes(data)


def test_bombs_are_refused_from_the_header_before_decoding() -> None:
    # No pixel data follows the header: decoding first would fail as "truncated" instead.
    data = png_header_only(6000, 6000)
    hasher = PdqHasher(PdqSettings(max_pixels=1_000_000))
    with pytest.raises(UnhashableMediaError, match="decompression bomb") as refused:
        hasher.hash_bytes(data)
    assert "HMA_PDQ_MAX_PIXELS" in str(refused.value)
    with pytest.raises(UnhashableMediaError, match="truncated"):
        REDUCED.hash_bytes(data)  # under the default limit it gets as far as decoding


def test_bombs_over_pillows_own_hard_limit_are_refused_too() -> None:
    with pytest.raises(UnhashableMediaError, match="decompression bomb"):
        REDUCED.hash_bytes(png_header_only(30_000, 30_000))


def test_default_pixel_limit_is_pillows() -> None:
    assert PdqSettings().max_pixels == DEFAULT_MAX_PIXELS == Image.MAX_IMAGE_PIXELS


def test_a_truncated_jpeg_is_refused(tmp_path: Path) -> None:
    data = encode(PIC, "JPEG", quality=90)
    path = tmp_path / "truncated.jpg"
    path.write_bytes(data[: len(data) // 2])
    for hasher in (FULL, REDUCED):
        with pytest.raises(UnhashableMediaError, match="truncated"):
            hasher.hash_file(path)


def test_a_corrupt_png_is_refused() -> None:
    data = bytearray(encode(PIC, "PNG"))
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)  # clobber the middle of IDAT
    with pytest.raises(UnhashableMediaError, match="corrupt"):
        REDUCED.hash_bytes(bytes(data))


@pytest.mark.parametrize(
    "content",
    [
        np.random.default_rng(1).bytes(4096),
        b"Just some text, not an image.\n" * 50,
        b"",
        b"\x89PNG\r\n\x1a\n",  # the signature and nothing else
        b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\nshowpage\n",  # refused format
    ],
    ids=["random-bytes", "text", "empty", "png-signature-only", "eps"],
)
def test_files_that_are_not_readable_images_are_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "upload.jpg"
    path.write_bytes(content)
    with pytest.raises(UnhashableMediaError, match=r"not an image format|corrupt"):
        REDUCED.hash_file(path)


def test_eps_is_refused_rather_than_handed_to_ghostscript() -> None:
    assert "EPS" not in readable_formats()
    assert {"JPEG", "PNG", "GIF", "WEBP", "TIFF", "BMP"} <= set(readable_formats())
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\nshowpage\n"
    with pytest.raises(UnhashableMediaError, match="not an image format"):
        open_image(io.BytesIO(eps))


def test_a_missing_path_is_the_callers_error_not_the_medias(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        REDUCED.hash_file(tmp_path / "nowhere.jpg")


# --- animated images: the first frame is hashed ---------------------------------------------

FIRST, SECOND = picture(seed=11), picture(seed=12)


@pytest.mark.parametrize(
    ("fmt", "options"),
    [
        ("GIF", {}),
        ("PNG", {}),
        ("WEBP", {"lossless": True}),
    ],
)
def test_animated_images_hash_as_their_first_frame(fmt: str, options: dict[str, object]) -> None:
    if fmt == "GIF":  # palette frames up front, so the first frame's rendering is known exactly
        first, second = FIRST.quantize(128), SECOND.quantize(128)
    else:
        first, second = FIRST, SECOND
    data = encode(first, fmt, save_all=True, append_images=[second], duration=100, **options)
    with Image.open(io.BytesIO(data)) as opened:
        assert getattr(opened, "n_frames", 1) == 2
    result = REDUCED.hash_bytes(data)
    assert hamming(result.value, rgb_hash(np.asarray(first.convert("RGB")))) <= 2
    assert hamming(result.value, rgb_hash(np.asarray(second.convert("RGB")))) > 31


# --- settings -------------------------------------------------------------------------------


def test_settings_section_is_declared_with_help_for_every_field() -> None:
    assert PDQ_SETTINGS.name == "pdq" and PDQ_SETTINGS.cls is PdqSettings
    fields = list(iter_setting_fields(PdqSettings, ("pdq",)))
    assert [f.env_var for f in fields] == [
        "HMA_PDQ_QUALITY_THRESHOLD",
        "HMA_PDQ_APPLY_EXIF_ORIENTATION",
        "HMA_PDQ_FULL_RESOLUTION",
        "HMA_PDQ_BIT_EXACT",
        "HMA_PDQ_MAX_PIXELS",
        "HMA_PDQ_INDEX_THREADS",
    ]
    assert all(f.help for f in fields)


def test_hasher_settings_come_from_hma_pdq_variables() -> None:
    assert make_pdq_hasher(load_settings(environ={})).settings == PdqSettings()
    settings = load_settings(
        environ={
            "HMA_PDQ_QUALITY_THRESHOLD": "70",
            "HMA_PDQ_APPLY_EXIF_ORIENTATION": "false",
            "HMA_PDQ_FULL_RESOLUTION": "yes",
            "HMA_PDQ_MAX_PIXELS": "1000000",
        }
    )
    assert make_pdq_hasher(settings).settings == PdqSettings(
        quality_threshold=70, apply_exif_orientation=False, full_resolution=True, max_pixels=10**6
    )


def test_hasher_settings_come_from_the_pdq_table(tmp_path: Path) -> None:
    config = tmp_path / "hma.toml"
    config.write_text("[pdq]\nquality_threshold = 20\nmax_pixels = 5000\n")
    settings = load_settings(environ={"HMA_PDQ_MAX_PIXELS": "6000"}, config_file=str(config))
    hasher = make_pdq_hasher(settings)
    assert hasher.settings == PdqSettings(quality_threshold=20, max_pixels=6000)
    with pytest.raises(UnhashableMediaError, match="limit of 6000"):
        hasher.hash_bytes(encode(PIC, "PNG"))


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("HMA_PDQ_QUALITY_THRESHOLD", "101"),
        ("HMA_PDQ_QUALITY_THRESHOLD", "-1"),
        ("HMA_PDQ_MAX_PIXELS", "0"),
        ("HMA_PDQ_MAX_PIXELS", str(2 * DEFAULT_MAX_PIXELS + 1)),
        ("HMA_PDQ_FULL_RESOLUTION", "maybe"),
    ],
)
def test_bad_values_name_their_variable(variable: str, value: str) -> None:
    settings = load_settings(environ={variable: value})
    with pytest.raises(SettingsError, match=variable):
        make_pdq_hasher(settings)


# --- the python-threatexchange contract -----------------------------------------------------


def test_hma_pdq_signal_is_pdq_with_correct_hashes(tmp_path: Path) -> None:
    assert issubclass(HmaPdqSignal, PdqSignal)
    assert HmaPdqSignal.get_name() == "pdq"
    path = tmp_path / "cmyk.jpg"
    PIC.convert("CMYK").save(path, quality=95)
    from_file = HmaPdqSignal.hash_from_file(path)
    assert from_file == PdqHasher().hash_file(path).value
    assert hamming(from_file, rgb_hash(RGB)) <= 2
    assert HmaPdqSignal.hash_from_bytes(path.read_bytes()) == from_file


def test_hma_pdq_signal_keeps_the_empty_string_for_low_quality() -> None:
    flat = encode(Image.new("RGB", (64, 64), "gray"), "PNG")
    assert HmaPdqSignal.hash_from_bytes(flat) == ""
    with pytest.raises(UnhashableMediaError):
        HmaPdqSignal.hash_from_bytes(b"not an image")


def test_the_pieces_fit_a_signal_type_record(tmp_path: Path) -> None:
    # What the plugin's hook is meant to yield; checked here so the wiring cannot drift.
    record = SignalTypeRecord(
        HmaPdqSignal,
        content_types=("photo",),
        default_threshold=31,
        hasher_factory=make_pdq_hasher,
        settings=PDQ_SETTINGS,
    )
    check_signal_type_record(record)
    assert record.name == "pdq"
    hasher = record.make_hasher(load_settings(environ={"HMA_PDQ_QUALITY_THRESHOLD": "90"}))
    path = tmp_path / "photo.png"
    PIC.save(path)
    result = hasher.hash_file(path)
    assert result.value == rgb_hash(RGB)
    assert result.quality is not None and result.quality < 90 and not result.quality_ok
