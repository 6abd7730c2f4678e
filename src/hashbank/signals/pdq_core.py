"""PDQ (Meta's 256-bit perceptual hash) as a few small matrix products.

The reference blurs the full-resolution luma with two box-filter passes per
axis (the "Jarosz" tent filter), samples 64x64 points, scores quality on that
64x64 image, then keeps DCT coefficients 1..16 x 1..16 and thresholds them at
their median. Blur and sampling are linear and separable, so for an image of
``rows x cols`` they collapse into two matrices (64 x rows and cols x 64) that
depend only on the dimensions: we build them once per size and cache them.
That turns the whole hash into ``L @ luma @ R`` plus a 16x64 DCT, with no
per-pixel Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from hashbank.signals.bits import pack_bits

#: Below this many rows or columns the reference refuses and returns zeroes.
MIN_DIM = 5
_OUT = 64


def jarosz_window(old: int, new: int = _OUT) -> int:
    """Box window length for one pass, as the reference computes it."""
    return (old + 2 * new - 1) // (2 * new)


@dataclass(frozen=True, slots=True)
class Band:
    """A 64 x n blur-and-sample matrix, stored as each row's short nonzero run.

    Each output touches about two box windows of pixels, so applying it costs
    64 x run instead of 64 x n, and building it costs the same.
    """

    index: np.ndarray  # (64, run) column indices, clipped into range
    weights: np.ndarray  # (64, run) float32, zero where the run leaves the axis

    def rows(self, image: np.ndarray) -> np.ndarray:
        """Band @ image: (64, n) x (n, w) -> (64, w)."""
        return np.einsum("ok,okw->ow", self.weights, image[self.index], optimize=False)

    def cols(self, image: np.ndarray) -> np.ndarray:
        """image @ Band.T: (h, n) x (n, 64) -> (h, 64)."""
        return np.einsum("hok,ok->ho", image[:, self.index], self.weights, optimize=False)


@lru_cache(maxsize=4096)
def downsample_matrix(n: int, scale: int = 1, reduced: int | None = None) -> Band:
    """Two reference box passes along an axis of length n, then 64 samples.

    The reference box of length ``window`` makes output o the mean of inputs
    [o-lo, o+hi] clipped to the axis (hi = (window+2)//2 - 1, lo = window-1-hi).
    Sample p of the twice-blurred axis is therefore the mean over o in the box
    of p of the mean over the box of o: weights on [p-2lo, p+2hi].

    With ``scale > 1`` the axis was decoded at 1/scale (``reduced`` samples,
    each the mean of ``scale`` originals): the full-size weights are summed
    onto the reduced samples, so the hash keeps the reference's geometry and
    loses only detail the blur removes anyway.
    """
    window = jarosz_window(n)
    hi = (window + 2) // 2 - 1
    lo = window - 1 - hi
    axis = np.arange(n)
    count = (np.minimum(axis + hi, n - 1) - np.maximum(axis - lo, 0) + 1).astype(np.float64)
    picks = ((np.arange(_OUT) + 0.5) * n / _OUT).astype(np.int64)[:, None]
    inner = np.arange(-lo, hi + 1)  # o - p
    outer = np.arange(-2 * lo, 2 * hi + 1)  # j - p
    boxes = picks + inner
    first = np.where((boxes >= 0) & (boxes < n), 1.0 / count[np.clip(boxes, 0, n - 1)], 0.0)
    first /= count[picks]
    weights = first @ ((outer[None, :] - inner[:, None] >= -lo) & (outer[None, :] - inner[:, None] <= hi))
    index = picks + outer
    weights[(index < 0) | (index >= n)] = 0.0
    index = np.clip(index, 0, n - 1)
    if scale > 1 and reduced is not None and reduced != n:
        index, weights = _fold(index // scale, weights, reduced)
    return Band(index, weights.astype(np.float32))


def _fold(index: np.ndarray, weights: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Sum the weights of each row that land on the same (reduced) index."""
    index = np.minimum(index, size - 1)
    base = index[:, :1]
    run = int((index - base).max()) + 1
    slot = np.arange(_OUT)[:, None] * run + (index - base)
    summed = np.bincount(slot.ravel(), weights.ravel(), minlength=_OUT * run).reshape(_OUT, run)
    return np.minimum(base + np.arange(run), size - 1), summed


def _dct_matrix() -> np.ndarray:
    i = np.arange(1, 17)[:, None]
    j = np.arange(_OUT)[None, :]
    return (np.sqrt(2.0 / _OUT) * np.cos(np.pi / 2 / _OUT * i * (2 * j + 1))).astype(np.float32)


DCT = _dct_matrix()


def quality(block: np.ndarray) -> int:
    """The reference's gradient-sum quality score (0..100) of the 64x64 image."""
    dv = np.trunc((block[:-1, :] - block[1:, :]) * 100 / 255)
    dh = np.trunc((block[:, :-1] - block[:, 1:]) * 100 / 255)
    total = int(np.abs(dv).sum() + np.abs(dh).sum())
    return min(total // 90, 100)


def dct16(luma: np.ndarray, height: int, width: int, scale: int = 1) -> tuple[np.ndarray, int]:
    """16x16 DCT coefficients and quality of a ``height x width`` image.

    ``luma`` is that image, or a 1/scale reduction of it (see downsample_matrix).
    """
    if (height, width) == (_OUT, _OUT) and luma.shape == (_OUT, _OUT):
        block = luma.astype(np.float32, copy=False)
    else:
        rows, cols = luma.shape
        block = downsample_matrix(width, scale, cols).cols(downsample_matrix(height, scale, rows).rows(luma))
    return DCT @ block @ DCT.T, quality(block)


def bits_from_dct(coeffs: np.ndarray) -> np.ndarray:
    """256 booleans: coefficient above the median (the 128th smallest)."""
    flat = coeffs.reshape(-1)
    median = np.partition(flat, 127)[127]
    return flat > median


# Each of the 8 dihedral transforms of the image maps to a sign pattern and an
# optional transpose of the 16x16 DCT (frequency k+1 flips sign under a mirror
# when k is even).
_EVEN = np.arange(16) % 2 == 0
_ROW_SIGN = np.where(_EVEN, -1.0, 1.0)[:, None]
_COL_SIGN = np.where(_EVEN, -1.0, 1.0)[None, :]

DIHEDRAL_NAMES = ("original", "rotate90", "rotate180", "rotate270", "flipx", "flipy", "flipplus1", "flipminus1")


def dihedral(coeffs: np.ndarray) -> list[np.ndarray]:
    """The DCT of the image under each of the 8 rotations/flips, in DIHEDRAL_NAMES order."""
    a = coeffs
    return [
        a,
        (a * _COL_SIGN).T,
        a * _ROW_SIGN * _COL_SIGN,
        (a * _ROW_SIGN).T,
        a * _ROW_SIGN,
        a * _COL_SIGN,
        a.T,
        (a * _ROW_SIGN * _COL_SIGN).T,
    ]


def pdq_hash(
    luma: np.ndarray,
    height: int | None = None,
    width: int | None = None,
    scale: int = 1,
    *,
    with_dihedral: bool = False,
) -> tuple[bytes, int, list[bytes]]:
    """(hash, quality, dihedral hashes) of an image; zeros if under 5 px a side."""
    height = height or luma.shape[0]
    width = width or luma.shape[1]
    if height < MIN_DIM or width < MIN_DIM:
        zero = bytes(32)
        return zero, 0, [zero] * 8 if with_dihedral else []
    coeffs, q = dct16(luma, height, width, scale)
    main = pack_bits(bits_from_dct(coeffs))
    variants = [pack_bits(bits_from_dct(c)) for c in dihedral(coeffs)] if with_dihedral else []
    return main, q, variants
