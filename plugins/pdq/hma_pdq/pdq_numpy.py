"""PDQ in numpy, computing only the 64x64 samples the hash reads: ~1/10 the CPU of pdqhash.

The PDQ reference (facebook/ThreatExchange ``pdq/``) turns the picture into float luminance
(0.299 R + 0.587 G + 0.114 B), runs two passes of 1-D box filters along rows and columns
("Jarosz" tent filter, window ``ceil(side / 128)`` per axis), samples the filtered picture at
64x64 points, scores quality from the gradients between those samples, takes the 16x16 lowest
non-constant DCT coefficients and sets each bit when its coefficient is above the median.

The reference filters every pixel, then keeps 4096 of them. Every step before the sampling is
linear and separable, so each sample is a fixed weighted sum of the pixels around it: per axis,
the weights of the two box passes are one small band per sample. Here each axis's bands are
built once per image side (cached), and the picture is reduced by them directly: first its
rows (straight from the uint8 pixels, R, G and B kept apart), then luminance on the 64 rows
left, then columns. That reads every pixel about once, where the reference touches each four
times and converts it to float first. The result is the reference's up to float rounding,
which can flip a bit whose coefficient sits on the median (0-2 bits in practice) and move the
quality score by one where a gradient truncates differently.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import numpy.typing as npt

#: PDQ samples the filtered picture on a 64x64 grid and keeps 16x16 DCT coefficients.
GRID, COEFFICIENTS = 64, 16
#: Per-pass box window along an axis is ``ceil(side / WINDOW_DIVISOR)``: two passes then span
#: about a grid cell (side / 64), so every pixel contributes to a sample.
WINDOW_DIVISOR = 2 * GRID
#: The reference hashes pictures smaller than this on either side as all zeros, quality 0.
MIN_SIDE = 5
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]


@functools.cache
def _dct_matrix() -> npt.NDArray[np.float64]:
    """The 16x64 DCT-II rows 1..16 (row 0, the mean, says nothing about structure)."""
    rows = np.arange(1, COEFFICIENTS + 1, dtype=np.float64)[:, np.newaxis]
    columns = np.arange(GRID, dtype=np.float64)[np.newaxis, :]
    scale = math.sqrt(2.0 / GRID)
    matrix: npt.NDArray[np.float64] = scale * np.cos(math.pi / 2 / GRID * rows * (2 * columns + 1))
    matrix.setflags(write=False)
    return matrix


def window_size(side: int) -> int:
    """The box window of one filter pass along an axis of ``side`` pixels (rounded up)."""
    return (side + WINDOW_DIVISOR - 1) // WINDOW_DIVISOR


def _box_extent(side: int, window: int) -> tuple[I64, I64]:
    """First and last input index each output of one box pass averages, clipped to the axis.

    The reference's window is not centred for even sizes: output ``o`` averages inputs
    ``o - (window - half) .. o + half - 1`` with ``half = (window + 2) // 2``, dividing by how
    many of those exist (the edges average fewer).
    """
    half = (window + 2) // 2
    outputs = np.arange(side, dtype=np.int64)
    first = np.maximum(0, outputs - (window - half))
    last = np.minimum(side - 1, outputs + half - 1)
    return first, last


@functools.lru_cache(maxsize=64)
def axis_bands(side: int) -> tuple[I64, F32]:
    """Per grid sample along an axis of ``side`` pixels: where its band starts, and its weights.

    Returns ``starts`` (64,) and ``weights`` (64, width): sample ``i`` is
    ``sum(weights[i, k] * pixel[starts[i] + k])``, the value the two box passes leave at the
    reference's sampling point ``floor((i + 0.5) * side / 64)``. Bands are padded with zero
    weights to one width, shifted inwards at the edges so they stay inside the axis.
    """
    first, last = _box_extent(side, window_size(side))
    counts = (last - first + 1).astype(np.float64)
    samples = ((np.arange(GRID) + 0.5) * side / GRID).astype(np.int64)
    dense = np.zeros((GRID, side), dtype=np.float64)
    for row, sample in enumerate(samples):
        # Second pass at ``sample`` averages first-pass outputs j, each an average itself.
        for j in range(int(first[sample]), int(last[sample]) + 1):
            dense[row, first[j] : last[j] + 1] += 1.0 / (counts[sample] * counts[j])
    nonzero = dense != 0.0
    lows = nonzero.argmax(axis=1)
    highs = side - 1 - nonzero[:, ::-1].argmax(axis=1)
    width = int((highs - lows).max()) + 1
    starts = np.minimum(lows, side - width).astype(np.int64)
    picks = starts[:, np.newaxis] + np.arange(width)[np.newaxis, :]
    weights = np.take_along_axis(dense, picks, axis=1).astype(np.float32)
    starts.setflags(write=False)  # cached and shared by every thread: read-only
    weights.setflags(write=False)
    return starts, weights


def _reduce_axis0(values: npt.NDArray[np.uint8] | F32, side: int) -> F32:
    """The 64 grid samples along axis 0 of ``values`` (any trailing shape)."""
    starts, weights = axis_bands(side)
    extra = (np.newaxis,) * (values.ndim - 1)
    total = np.zeros((GRID, *values.shape[1:]), dtype=np.float32)
    for k in range(weights.shape[1]):
        total += weights[(slice(None), k, *extra)] * values[starts + k]
    return total


def grid_luma(pixels: npt.NDArray[np.uint8]) -> F32:
    """The reference's 64x64 filtered, sampled luminance of an (h, w, 3) RGB or (h, w) grey array.

    A grey picture broadcast to three channels (stride 0) is read as one channel: its
    luminance is the grey value itself.
    """
    if pixels.ndim == 3 and pixels.strides[2] == 0:
        pixels = pixels[:, :, 0]
    rows = _reduce_axis0(pixels, pixels.shape[0])  # (64, w) or (64, w, 3)
    luma = rows @ LUMA if rows.ndim == 3 else rows  # (64, w)
    return _reduce_axis0(np.ascontiguousarray(luma.T), luma.shape[1]).T


def quality(grid: F32) -> int:
    """PDQ's quality: significant gradients between neighbouring samples, capped at 100.

    Each difference is scaled to percent of full range and truncated toward zero before
    summing, as the reference does, so many faint gradients do not add up to quality.
    """
    down = np.trunc((grid[:-1, :] - grid[1:, :]) * np.float32(100.0) / np.float32(255.0))
    across = np.trunc((grid[:, :-1] - grid[:, 1:]) * np.float32(100.0) / np.float32(255.0))
    total = int(np.abs(down).sum(dtype=np.float64) + np.abs(across).sum(dtype=np.float64))
    return min(100, total // 90)


def hash_grid(grid: F32) -> str:
    """The 64-hex-digit PDQ hash of a 64x64 sample grid.

    Bit ``16 * i + j`` is set when DCT coefficient (i, j) is above the median (the 128th
    smallest of 256, as the reference's Torben median picks); the hex reads from bit 255 down,
    the reference's and pdqhash's order.
    """
    dct = _dct_matrix()
    coefficients = (dct @ grid.astype(np.float64) @ dct.T).ravel()
    median = np.partition(coefficients, 127)[127]
    bits = coefficients > median
    return np.packbits(bits[::-1]).tobytes().hex()


def pdq_hash(pixels: npt.NDArray[np.uint8]) -> tuple[str, int]:
    """``(hex hash, quality)`` of RGB or grey uint8 pixels, within a bit or two of pdqhash."""
    if min(pixels.shape[:2]) < MIN_SIDE:
        return "0" * 64, 0
    grid = grid_luma(pixels)
    return hash_grid(grid), quality(grid)
