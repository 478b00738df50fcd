"""The built-in default dataset: a small long-tailed set of drawn textures, generated from a seed.

Nothing is downloaded: ``generate_synthetic(seed)`` draws every image with vectorised numpy in about a
second, and ``load_synthetic(root, seed)`` caches the result as one ``.npz`` file.

In-distribution (ID) data: 10 classes of two-tone textures that fill the whole 32x32 image, so that a
crop of 10% of the image (RandomResizedCrop scale 0.1) still shows the class. The class is the GEOMETRY
only. Each class is a mixture of 8 prototypes (modes): a pattern drawn once on a 48x48 canvas with its own
frequency / phase / small orientation jitter inside the class's range, in one of 8 palettes shared by all
classes (either polarity, jittered). An image is a 32x32 window of one prototype at a random offset, its
colours jittered a little more, plus pixel noise. So an image's close neighbours are the other windows of
its prototype, and a head class has more of them than a tail class: the density COLT's tailness reads
grows with the class's count by construction. Mirror images belong to the same class (diagonal stripes of
both directions are one class), so horizontal flips never change the label.

    0 hstripes  horizontal stripes, period 4-9 px
    1 vstripes  vertical stripes, period 4-9 px
    2 diagonal  stripes at +45 or -45 degrees (both are this class), period 4-9 px
    3 checker   checkerboard, squares of 3-7 px
    4 rings     concentric rings around a random centre, period 4-8 px
    5 dots      square lattice of round dots (radius 0.3-0.4 of the period), period 5-10 px
    6 grid      axis-aligned grid lines (a quarter to a third of the period wide), period 6-10 px
    7 waves     horizontal wavy stripes (amplitude 1.5-3.5 px, wavelength 9-16 px)
    8 blobs     maze-like blobs: thresholded band-pass noise, feature size 4-8 px, no orientation
    9 bricks    brick wall: horizontal mortar lines and staggered vertical joints (mortar about a third of the row)

Class ``r`` is also the rank by training count: class 0 is the head, class 9 the tail. Class ``r`` has
``floor(500 * 0.05 ** (r / 9))`` training images (500, 358, 256, 184, 132, 94, 67, 48, 34, 25; imbalance
ratio 20, see ``train_class_counts()``). The test set is balanced: 100 per class, from the same prototypes.

Out-of-distribution (OOD) pool: 6,000 images whose relation to the classes is known.

    near-OOD, 200 per class (2,000, a third of the pool; near-head and near-tail alike): windows of the
        class's own prototypes under a shift no ID image shows: 1.6-2.2x larger (a window 32/f pixels
        wide resampled to 32x32) and with a fine grain texture
    far-OOD, 1,000 per family (4,000), unrelated to any class:
        smooth    smooth random colour field (low-frequency noise in each channel)
        polygons  overlapping random flat-coloured triangles on a random background
        gradient  linear or radial colour gradients between two random colours
        noise     colourful high-frequency noise texture (1/f^beta, beta 0-1, per channel)

``ood_near_class`` (the class a near item was drawn from, -1 for far items) and ``ood_far_family`` (index
into ``FAR_FAMILY_NAMES``, -1 for near items) are metadata for reports only (data/relations.py): the pool
dataset that training and the samplers see is unlabelled.

Each split (train, test, OOD) is stored in a fixed pseudo-random order. The parts are drawn from
independent child generators of ``np.random.SeedSequence(seed)`` (one per split and class / family), so
the same seed gives byte-identical arrays, and changing one part (e.g. the OOD size) leaves the others.

    python -m data.synthetic --out grid.png [--seed 0]     # a labelled grid of samples
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path

import numpy as np

from utils.checkpoint import atomic_write
from utils.errors import WriteError

SYNTHETIC_VERSION = 2
IMAGE_SIZE = 32
CLASS_NAMES = ("hstripes", "vstripes", "diagonal", "checker", "rings", "dots", "grid", "waves", "blobs", "bricks")
HEAD_COUNT = 500
IMBALANCE_RATIO = 20
TEST_PER_CLASS = 100
FAR_FAMILY_NAMES = ("smooth", "polygons", "gradient", "noise")
FAR_PER_FAMILY = 1000
NEAR_PER_CLASS = 200
PROTOTYPES_PER_CLASS = 8
NEAR_ZOOM = (1.6, 2.2)   # near-OOD: a class's prototype seen 1.6-2.2x larger than any ID image shows it
NEAR_GRAIN = 0.12        # and with a fine grain texture no ID image has
OOD_SIZE = len(FAR_FAMILY_NAMES) * FAR_PER_FAMILY + len(CLASS_NAMES) * NEAR_PER_CLASS
KEYS = ("train_x", "train_y", "test_x", "test_y", "ood_x", "ood_near_class", "ood_far_family", "class_names")

_S = IMAGE_SIZE


class _Canvas:
    """Pixel-centre coordinates of a size x size drawing, origin at its centre, x to the right, y down, shape
    (1, size, size) so that per-image parameters of shape (n, 1, 1) broadcast against them; and the
    frequencies (cycles / pixel) of its real 2-D FFT."""

    def __init__(self, size: int):
        self.size = size
        self.Y, self.X = (a[None].astype(np.float32) - (size - 1) / 2 for a in np.mgrid[0:size, 0:size])
        self.freq = np.sqrt(np.fft.fftfreq(size)[:, None] ** 2 + np.fft.rfftfreq(size)[None, :] ** 2).astype(np.float32)


_IMAGE = _Canvas(_S)
# Prototypes are drawn on a larger canvas: an image is a 32x32 window of one, at a random offset.
PROTOTYPE_SIZE = 48
_PROTOTYPE = _Canvas(PROTOTYPE_SIZE)
_X, _Y, _FREQ = _IMAGE.X, _IMAGE.Y, _IMAGE.freq


def train_class_counts() -> list[int]:
    """Training images per class: class r (rank r, 0 = head) gets floor(500 * 0.05 ** (r / 9))."""
    k = len(CLASS_NAMES)
    return [int(math.floor(HEAD_COUNT * (1.0 / IMBALANCE_RATIO) ** (r / (k - 1)) + 1e-9)) for r in range(k)]


def default_synthetic_root() -> Path:
    """``$LTSSL_DATA/synthetic`` if LTSSL_DATA is set, else ``~/.cache/ltssl/synthetic``."""
    base = os.environ.get("LTSSL_DATA")
    if base:
        return Path(base).expanduser() / "synthetic"
    return Path.home() / ".cache" / "ltssl" / "synthetic"


def cache_path(root: str | os.PathLike, seed: int = 0) -> Path:
    return Path(root).expanduser() / f"synthetic_v{SYNTHETIC_VERSION}_seed{seed}.npz"


# ----------------------------------------------------------------------------------------------------
# Drawing primitives. All work on a batch: parameters are (n, 1, 1) arrays, results are (n, 32, 32)
# float32 "pattern" maps in [0, 1] (1 = foreground colour).

def _u(rng: np.random.Generator, n: int, lo: float, hi: float) -> np.ndarray:
    return rng.uniform(lo, hi, size=(n, 1, 1)).astype(np.float32)


def _wave(phase: np.ndarray, sharp: np.ndarray) -> np.ndarray:
    """Periodic stripes of phase ``phase`` (radians): a sinusoid (sharp ~ 1) to a soft square wave."""
    return 0.5 + 0.5 * np.clip(sharp * np.sin(phase), -1.0, 1.0)


def _centred_frac(t: np.ndarray) -> np.ndarray:
    """t minus its nearest integer: in [-0.5, 0.5]."""
    return t - np.round(t)


def _soft(dist: np.ndarray, half_width: np.ndarray | float) -> np.ndarray:
    """1 inside ``dist < half_width``, 0 outside, with a one-pixel anti-aliased edge."""
    return np.clip(half_width - dist + 0.5, 0.0, 1.0)


def _rotate(theta: np.ndarray, cv: _Canvas = _IMAGE) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates along (u) and across (v) direction ``theta`` (radians)."""
    c, s = np.cos(theta), np.sin(theta)
    return cv.X * c + cv.Y * s, -cv.X * s + cv.Y * c


def _bandpass_noise(rng: np.random.Generator, shape: tuple, gain: np.ndarray, cv: _Canvas = _IMAGE) -> np.ndarray:
    """White noise of ``shape`` (..., S, S) filtered by ``gain`` (broadcasts against (..., S, S // 2 + 1)),
    normalised to unit standard deviation per image map."""
    noise = rng.standard_normal(shape, dtype=np.float32)
    field = np.fft.irfft2(np.fft.rfft2(noise) * gain, s=(cv.size, cv.size)).astype(np.float32)
    field -= field.mean(axis=(-2, -1), keepdims=True)
    return field / (field.std(axis=(-2, -1), keepdims=True) + 1e-6)


def _stripes(rng, n, cv, angles_deg, jitter_deg, period=(4.0, 9.0)):
    """Straight stripes whose normal is at one of ``angles_deg`` (chosen per image) +- jitter."""
    base = np.asarray(angles_deg, np.float32)[rng.integers(0, len(angles_deg), size=(n, 1, 1))]
    theta = np.deg2rad(base + _u(rng, n, -jitter_deg, jitter_deg))
    u, _ = _rotate(theta, cv)
    p = _u(rng, n, *period)
    return _wave(2 * np.pi * u / p + _u(rng, n, 0, 2 * np.pi), _u(rng, n, 1.0, 6.0))


def _dot_lattice(rng, n, cv):
    """A square lattice of round dots, period 5-10 px."""
    p = _u(rng, n, 5.0, 10.0)
    u, v = _rotate(np.deg2rad(_u(rng, n, -8, 8)), cv)
    u, v = u + _u(rng, n, 0, 100), v + _u(rng, n, 0, 100)
    radius = p * _u(rng, n, 0.3, 0.4)
    return _soft(np.hypot(_centred_frac(u / p) * p, _centred_frac(v / p) * p), radius)


def _hstripes(rng, n, cv=_IMAGE):
    return _stripes(rng, n, cv, [90.0], 8.0)


def _vstripes(rng, n, cv=_IMAGE):
    return _stripes(rng, n, cv, [0.0], 8.0)


def _diagonal(rng, n, cv=_IMAGE):
    return _stripes(rng, n, cv, [45.0, 135.0], 8.0)


def _checker(rng, n, cv=_IMAGE):
    p = _u(rng, n, 6.0, 14.0)  # a full period is two squares
    u, v = _rotate(np.deg2rad(_u(rng, n, -6, 6)), cv)
    s = np.sin(2 * np.pi * u / p + _u(rng, n, 0, 2 * np.pi)) * np.sin(2 * np.pi * v / p + _u(rng, n, 0, 2 * np.pi))
    return 0.5 + 0.5 * np.clip(_u(rng, n, 3.0, 10.0) * s, -1.0, 1.0)


def _rings(rng, n, cv=_IMAGE):
    r = np.hypot(cv.X - _u(rng, n, -12, 12), cv.Y - _u(rng, n, -12, 12))
    return _wave(2 * np.pi * r / _u(rng, n, 4.0, 8.0) + _u(rng, n, 0, 2 * np.pi), _u(rng, n, 1.0, 6.0))


def _dots(rng, n, cv=_IMAGE):
    return _dot_lattice(rng, n, cv)


def _grid(rng, n, cv=_IMAGE):
    p = _u(rng, n, 6.0, 10.0)
    u, v = _rotate(np.deg2rad(_u(rng, n, -6, 6)), cv)
    half = p * _u(rng, n, 0.12, 0.18)
    dist = np.minimum(np.abs(_centred_frac(u / p + _u(rng, n, 0, 1))), np.abs(_centred_frac(v / p + _u(rng, n, 0, 1)))) * p
    return _soft(dist, half)


def _waves(rng, n, cv=_IMAGE):
    wavelength = _u(rng, n, 9.0, 16.0)
    y = cv.Y + _u(rng, n, 1.5, 3.5) * np.sin(2 * np.pi * cv.X / wavelength + _u(rng, n, 0, 2 * np.pi))
    return _wave(2 * np.pi * y / _u(rng, n, 5.0, 9.0) + _u(rng, n, 0, 2 * np.pi), _u(rng, n, 1.5, 6.0))


def _blobs(rng, n, cv=_IMAGE):
    f0 = 1.0 / _u(rng, n, 9.0, 15.0)  # wavelength of 9-15 px: blobs of 4-8 px
    field = _bandpass_noise(rng, (n, cv.size, cv.size), np.exp(-0.5 * ((cv.freq - f0) / 0.025) ** 2), cv)
    return 0.5 + 0.5 * np.clip(_u(rng, n, 2.0, 8.0) * field, -1.0, 1.0)


def _bricks(rng, n, cv=_IMAGE):
    h = _u(rng, n, 5.0, 9.0)
    length = h * _u(rng, n, 1.8, 2.8)
    y = cv.Y + _u(rng, n, 0, 100)
    x = cv.X + _u(rng, n, 0, 100)
    row = np.floor(y / h)
    half = h * _u(rng, n, 0.14, 0.2)
    hline = np.abs(_centred_frac(y / h)) * h
    vline = np.abs(_centred_frac(x / length + 0.5 * (row % 2))) * length
    return _soft(np.minimum(hline, vline), half)


_CLASS_DRAW = (_hstripes, _vstripes, _diagonal, _checker, _rings, _dots, _grid, _waves, _blobs, _bricks)


# ----------------------------------------------------------------------------------------------------
# Colouring.

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)
# The palettes of the prototypes: (foreground, background) RGB pairs, each used by every class in either
# polarity, so that a class is never told by its colours.
ID_PALETTES = np.array([
    [[0.90, 0.20, 0.15], [0.10, 0.10, 0.35]],   # red / navy
    [[0.95, 0.85, 0.20], [0.20, 0.35, 0.10]],   # yellow / dark olive
    [[0.20, 0.70, 0.95], [0.35, 0.05, 0.20]],   # sky / maroon
    [[0.95, 0.95, 0.95], [0.25, 0.25, 0.25]],   # white / dark grey
    [[0.30, 0.85, 0.35], [0.45, 0.10, 0.55]],   # green / purple
    [[0.98, 0.60, 0.20], [0.05, 0.30, 0.35]],   # orange / dark teal
    [[0.95, 0.55, 0.80], [0.10, 0.30, 0.15]],   # pink / forest
    [[0.60, 0.90, 0.90], [0.55, 0.25, 0.05]],   # pale cyan / brown
], np.float32)
PALETTE_JITTER = 0.06  # each colour channel of a prototype moves by up to this much from its palette
IMAGE_COLOUR_JITTER = 0.03  # and each image's from its prototype's


def _colour_pairs(rng: np.random.Generator, n: int, min_contrast: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """n pairs of random RGB colours in [0, 1] whose luminances differ by at least ``min_contrast``."""
    a = rng.random((n, 3), dtype=np.float32)
    b = rng.random((n, 3), dtype=np.float32)
    bad = np.abs((a - b) @ _LUMA) < min_contrast
    while bad.any():  # rejection sampling; a few rounds, deterministic given rng
        k = int(bad.sum())
        a[bad] = rng.random((k, 3), dtype=np.float32)
        b[bad] = rng.random((k, 3), dtype=np.float32)
        bad = np.abs((a - b) @ _LUMA) < min_contrast
    return a, b


def _palette_pairs(rng: np.random.Generator, n: int, palettes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """n (foreground, background) pairs: a palette drawn uniformly, either polarity, each channel jittered."""
    pairs = palettes[rng.integers(0, len(palettes), size=n)]                    # (n, 2, 3)
    flip = rng.random(n) < 0.5
    pairs[flip] = pairs[flip][:, ::-1]
    pairs = np.clip(pairs + rng.uniform(-PALETTE_JITTER, PALETTE_JITTER, size=pairs.shape), 0.0, 1.0)
    return pairs[:, 0].astype(np.float32), pairs[:, 1].astype(np.float32)


def _to_uint8(img: np.ndarray) -> np.ndarray:
    return np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)


def _pixel_noise(rng, n):
    return _u(rng, n, 0.0, 0.05)[..., None] * rng.standard_normal((n, _S, _S, 3), dtype=np.float32)


def _two_tone(rng: np.random.Generator, pattern_fn, n: int) -> np.ndarray:
    """n images of a pattern in colours drawn from the palettes, plus pixel noise: (n, 32, 32, 3) uint8."""
    pattern = pattern_fn(rng, n)[..., None]
    fg, bg = _palette_pairs(rng, n, ID_PALETTES)
    img = bg[:, None, None, :] + pattern * (fg - bg)[:, None, None, :]
    return _to_uint8(img + _pixel_noise(rng, n))


class _Prototypes:
    """The modes of one class: ``PROTOTYPES_PER_CLASS`` pattern maps on the 48x48 canvas, each with its own
    colours (a palette, either polarity, jittered). Every image of the class is a window of one of them."""

    def __init__(self, rng: np.random.Generator, pattern_fn, count: int):
        self.patterns = pattern_fn(rng, count, _PROTOTYPE)                       # (P, 48, 48)
        self.fg, self.bg = _palette_pairs(rng, count, ID_PALETTES)               # (P, 3) each

    def images(self, rng: np.random.Generator, n: int, zoom: tuple[float, float] | None = None,
               grain: float = 0.0) -> np.ndarray:
        """n images (n, 32, 32, 3) uint8, the prototypes in turn from a random start (balanced): a 32x32 window
        at a random offset (``zoom`` (lo, hi): a window 32 / f pixels wide, f uniform in [lo, hi], resampled
        bilinearly to 32x32), the prototype's colours jittered by IMAGE_COLOUR_JITTER, ``grain`` x a fine
        band-pass noise texture (the same in each channel), pixel noise."""
        count, size = len(self.patterns), PROTOTYPE_SIZE
        which = (rng.integers(0, count) + np.arange(n)) % count
        factor = np.ones(n, np.float32) if zoom is None else rng.uniform(*zoom, size=n).astype(np.float32)
        width = _S / factor                                                      # window side on the canvas
        top = rng.uniform(0, size - width).astype(np.float32)
        left = rng.uniform(0, size - width).astype(np.float32)
        steps = (np.arange(_S, dtype=np.float32) + 0.5) / _S                     # pixel centres in [0, 1]
        ys = np.clip(top[:, None] + steps[None] * width[:, None] - 0.5, 0, size - 1)   # (n, 32)
        xs = np.clip(left[:, None] + steps[None] * width[:, None] - 0.5, 0, size - 1)
        y0, x0 = np.floor(ys).astype(np.int64), np.floor(xs).astype(np.int64)
        y1, x1 = np.minimum(y0 + 1, size - 1), np.minimum(x0 + 1, size - 1)
        wy, wx = (ys - y0)[:, :, None], (xs - x0)[:, None, :]
        maps = self.patterns[which]                                              # (n, 48, 48)
        rows = np.arange(n)[:, None, None]

        def at(yy, xx):
            return maps[rows, yy[:, :, None], xx[:, None, :]]
        pattern = ((1 - wy) * ((1 - wx) * at(y0, x0) + wx * at(y0, x1))
                   + wy * ((1 - wx) * at(y1, x0) + wx * at(y1, x1)))[..., None]
        fg = np.clip(self.fg[which] + rng.uniform(-IMAGE_COLOUR_JITTER, IMAGE_COLOUR_JITTER, (n, 3)), 0, 1)
        bg = np.clip(self.bg[which] + rng.uniform(-IMAGE_COLOUR_JITTER, IMAGE_COLOUR_JITTER, (n, 3)), 0, 1)
        img = bg[:, None, None, :] + pattern * (fg - bg)[:, None, None, :]
        if grain > 0:
            fine = _bandpass_noise(rng, (n, _S, _S), np.exp(-0.5 * ((_FREQ - 0.4) / 0.08) ** 2))
            img = img + grain * fine[..., None]
        return _to_uint8(img + _pixel_noise(rng, n).astype(np.float32))


def _ood_smooth(rng, n):
    gain = np.exp(-0.5 * (_FREQ / _u(rng, n, 0.03, 0.07)[:, None]) ** 2)  # (n, 1, 32, 17)
    field = _bandpass_noise(rng, (n, 3, _S, _S), gain)
    centre = rng.random((n, 3, 1, 1), dtype=np.float32)
    spread = rng.uniform(0.1, 0.35, size=(n, 3, 1, 1)).astype(np.float32)
    return _to_uint8(np.moveaxis(centre + spread * field, 1, -1))


def _ood_polygons(rng, n, k=5):
    img = np.broadcast_to(rng.random((n, 1, 1, 3), dtype=np.float32), (n, _S, _S, 3)).copy()
    centre = rng.uniform(-18, 18, size=(n, k, 1, 2)).astype(np.float32)
    radius = rng.uniform(8, 22, size=(n, k, 3, 1)).astype(np.float32)
    # Vertices anticlockwise around the centre, about a third of a turn apart: no slivers.
    angle = (rng.uniform(0, 2 * np.pi, size=(n, k, 1)) + np.array([0.0, 2.1, 4.2])
             + rng.uniform(-0.5, 0.5, size=(n, k, 3))).astype(np.float32)
    vert = centre + radius * np.stack([np.cos(angle), np.sin(angle)], axis=-1)  # (n, k, 3, 2), anticlockwise
    inside = np.ones((n, k, _S, _S), bool)
    for e in range(3):  # a point is inside when it is left of all three (anticlockwise) edges
        x0, y0 = vert[:, :, e, 0, None, None], vert[:, :, e, 1, None, None]
        x1, y1 = vert[:, :, (e + 1) % 3, 0, None, None], vert[:, :, (e + 1) % 3, 1, None, None]
        inside &= (x1 - x0) * (_Y - y0) - (y1 - y0) * (_X - x0) >= 0
    colours = rng.random((n, k, 3), dtype=np.float32)
    for j in range(k):
        img = np.where(inside[:, j, :, :, None], colours[:, j, None, None, :], img)
    return _to_uint8(img + _pixel_noise(rng, n))


def _ood_gradient(rng, n):
    theta = _u(rng, n, 0, 2 * np.pi)
    u, _ = _rotate(theta)
    linear = u / _u(rng, n, 20, 50) + 0.5 + _u(rng, n, -0.3, 0.3)
    radial = np.hypot(_X - _u(rng, n, -20, 20), _Y - _u(rng, n, -20, 20)) / _u(rng, n, 15, 45)
    t = np.clip(np.where(rng.random((n, 1, 1)) < 0.5, linear, radial), 0.0, 1.0)[..., None]
    a, b = _colour_pairs(rng, n, min_contrast=0.2)
    img = a[:, None, None, :] + t * (b - a)[:, None, None, :]
    return _to_uint8(img + _pixel_noise(rng, n))


def _ood_noise(rng, n):
    beta = _u(rng, n, 0.0, 1.0)[:, None]  # (n, 1, 1, 1)
    gain = np.maximum(_FREQ, 1.0 / _S) ** (-beta)
    field = _bandpass_noise(rng, (n, 3, _S, _S), gain)
    centre = rng.uniform(0.3, 0.7, size=(n, 3, 1, 1)).astype(np.float32)
    spread = rng.uniform(0.12, 0.25, size=(n, 3, 1, 1)).astype(np.float32)
    return _to_uint8(np.moveaxis(centre + spread * field, 1, -1))


_FAR_DRAW = (_ood_smooth, _ood_polygons, _ood_gradient, _ood_noise)


# ----------------------------------------------------------------------------------------------------

def _labelled_set(ss: np.random.SeedSequence, prototypes: list[_Prototypes], counts: list[int]
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Images of every class (one child generator per class), then shuffled by a further child."""
    children = ss.spawn(len(counts) + 1)
    xs = [protos.images(np.random.default_rng(child), count) for protos, child, count in zip(prototypes, children, counts)]
    ys = [np.full(count, c, np.int64) for c, count in enumerate(counts)]
    order = np.random.default_rng(children[-1]).permutation(sum(counts))
    return np.concatenate(xs)[order], np.concatenate(ys)[order]


def class_prototypes(seed: int = 0) -> list[_Prototypes]:
    """The prototypes of every class for ``seed`` (shared by the training set, the test set and the pool)."""
    ss = np.random.SeedSequence(int(seed)).spawn(4)[3]
    return [_Prototypes(np.random.default_rng(child), draw, PROTOTYPES_PER_CLASS)
            for draw, child in zip(_CLASS_DRAW, ss.spawn(len(_CLASS_DRAW)))]


def generate_synthetic(seed: int = 0) -> dict[str, np.ndarray]:
    """All arrays of the synthetic dataset for ``seed`` (deterministic; a few seconds on one core).

    train_x (N, 32, 32, 3) uint8 HWC, train_y (N,) int64 with N = sum(train_class_counts());
    test_x (1000, 32, 32, 3) uint8, test_y (1000,) int64 (100 per class);
    ood_x (OOD_SIZE, 32, 32, 3) uint8; for reports only: ood_near_class (OOD_SIZE,) int64, the ID class a
    near-OOD image was drawn from (-1: far-OOD), and ood_far_family (OOD_SIZE,) int64 indexing
    FAR_FAMILY_NAMES (-1: near-OOD); class_names (10,) fixed-width unicode.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    train_ss, test_ss, ood_ss, _ = np.random.SeedSequence(int(seed)).spawn(4)
    prototypes = class_prototypes(seed)
    train_x, train_y = _labelled_set(train_ss, prototypes, train_class_counts())
    test_x, test_y = _labelled_set(test_ss, prototypes, [TEST_PER_CLASS] * len(CLASS_NAMES))

    far_ss, near_ss, order_ss = ood_ss.spawn(3)
    far = [draw(np.random.default_rng(child), FAR_PER_FAMILY) for draw, child in zip(_FAR_DRAW, far_ss.spawn(len(_FAR_DRAW)))]
    near = [protos.images(np.random.default_rng(child), NEAR_PER_CLASS, zoom=NEAR_ZOOM, grain=NEAR_GRAIN)
            for protos, child in zip(prototypes, near_ss.spawn(len(prototypes)))]
    far_family = np.concatenate([np.repeat(np.arange(len(far), dtype=np.int64), FAR_PER_FAMILY),
                                 np.full(len(near) * NEAR_PER_CLASS, -1, np.int64)])
    near_class = np.concatenate([np.full(len(far) * FAR_PER_FAMILY, -1, np.int64),
                                 np.repeat(np.arange(len(near), dtype=np.int64), NEAR_PER_CLASS)])
    order = np.random.default_rng(order_ss).permutation(len(near_class))
    return {
        "train_x": train_x, "train_y": train_y,
        "test_x": test_x, "test_y": test_y,
        "ood_x": np.concatenate(far + near)[order],
        "ood_near_class": near_class[order], "ood_far_family": far_family[order],
        "class_names": np.array(CLASS_NAMES, dtype=f"<U{max(map(len, CLASS_NAMES))}"),
    }


def _check_arrays(arrays: dict[str, np.ndarray]) -> None:
    missing = [k for k in KEYS if k not in arrays]
    if missing:
        raise ValueError(f"missing arrays {missing}")
    for x_key, y_key in (("train_x", "train_y"), ("test_x", "test_y"), ("ood_x", "ood_near_class"),
                         ("ood_x", "ood_far_family")):
        x, y = arrays[x_key], arrays[y_key]
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != (_S, _S, 3):
            raise ValueError(f"{x_key}: expected (N, {_S}, {_S}, 3) uint8, got {x.shape} {x.dtype}")
        if y.dtype != np.int64 or y.shape != x.shape[:1]:
            raise ValueError(f"{y_key}: expected ({len(x)},) int64, got {y.shape} {y.dtype}")


def load_synthetic(root: str | os.PathLike | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    """The arrays of ``generate_synthetic(seed)``, cached in ``root/synthetic_v{VERSION}_seed{seed}.npz``.

    The first call generates and writes the file (atomically: a temporary file in ``root``, then
    ``os.replace``); later calls only read it. ``root`` defaults to ``default_synthetic_root()``.
    A cache file that cannot be read raises ValueError (it is never silently regenerated).
    """
    root = Path(root).expanduser() if root is not None else default_synthetic_root()
    path = cache_path(root, seed)
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
            _check_arrays(arrays)
        except Exception as exc:  # a truncated / foreign / corrupt file: zipfile, OSError, ValueError, ...
            raise ValueError(f"synthetic data cache {path} is unreadable or corrupt ({type(exc).__name__}: "
                             f"{exc}); delete it to regenerate it") from exc
        return arrays
    arrays = generate_synthetic(seed)
    try:
        atomic_write(path, lambda f: np.savez(f, **arrays))
    except WriteError as e:
        error = WriteError(f"{e}: the synthetic data is generated into its cache folder on first use; point --data "
                           f"(or LTSSL_DATA) at a writable folder")
        error.errno = e.errno
        raise error from e
    return arrays


def save_grid(arrays: dict[str, np.ndarray], out: str | os.PathLike, per_row: int = 8, near_per_row: int = 3,
              far_rows: int = 1) -> None:
    """A PNG with one row per class (``per_row`` training images, then ``near_per_row`` near-OOD images
    drawn from that class) and ``far_rows`` rows of far-OOD images (cycling through the families)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [str(s) for s in arrays["class_names"]]
    columns = per_row + near_per_row
    rows = len(names) + far_rows
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 0.9 + 1.2, rows * 0.95 + 0.3))
    near_class = arrays["ood_near_class"]
    for c, name in enumerate(names):
        ids = np.flatnonzero(arrays["train_y"] == c)[:per_row]
        nears = np.flatnonzero(near_class == c)[:near_per_row]
        for j, i in enumerate(ids):
            axes[c, j].imshow(arrays["train_x"][i], interpolation="nearest")
        for j, i in enumerate(nears):
            axes[c, per_row + j].imshow(arrays["ood_x"][i], interpolation="nearest")
        axes[c, 0].set_ylabel(f"{c} {name}", rotation=0, ha="right", va="center", fontsize=8)
        if c == 0:
            axes[c, 0].set_title("ID (training)", fontsize=7, loc="left", pad=3)
            axes[c, per_row].set_title("near-OOD of the class", fontsize=7, loc="left", pad=3)
    family = arrays["ood_far_family"]
    firsts = [np.flatnonzero(family == f) for f in range(len(FAR_FAMILY_NAMES))]
    for i in range(far_rows * columns):
        f = i % len(firsts)
        k = firsts[f][i // len(firsts)]
        ax = axes[len(names) + i // columns, i % columns]
        ax.imshow(arrays["ood_x"][k], interpolation="nearest")
        ax.set_title(FAR_FAMILY_NAMES[f], fontsize=6, pad=2)
        if i % columns == 0:
            ax.set_ylabel("far-OOD", rotation=0, ha="right", va="center", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        if not ax.images:
            ax.axis("off")
    fig.tight_layout(pad=0.3)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Draw the synthetic long-tailed dataset and save a grid of samples.")
    parser.add_argument("--out", required=True, help="PNG file to write")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    arrays = generate_synthetic(args.seed)
    took = time.perf_counter() - start
    save_grid(arrays, args.out)
    print(f"generated seed {args.seed} in {took:.2f} s: train {len(arrays['train_x'])} "
          f"(per class {train_class_counts()}), test {len(arrays['test_x'])}, OOD {len(arrays['ood_x'])}; "
          f"grid -> {args.out}")


if __name__ == "__main__":
    main()
