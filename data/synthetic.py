"""The built-in default dataset: a small long-tailed set of drawn textures, generated from a seed.

Nothing is downloaded: ``generate_synthetic(seed)`` draws every image with vectorised numpy in about a
second, and ``load_synthetic(root, seed)`` caches the result as one ``.npz`` file.

In-distribution (ID) data: 10 classes of two-tone textures that fill the whole 32x32 image, so that a
crop of 10% of the image (RandomResizedCrop scale 0.1) still shows the class. The class is the GEOMETRY
only: every image gets its own random pair of well-separated colours (either polarity), its own
frequency / phase / small orientation jitter inside the class's range and a little pixel noise.
Mirror images belong to the same class (diagonal stripes of both directions are one class), so
horizontal flips never change the label.

    0 hstripes  horizontal stripes, period 4-9 px
    1 vstripes  vertical stripes, period 4-9 px
    2 diagonal  stripes at +45 or -45 degrees (both are this class), period 4-9 px
    3 checker   checkerboard, squares of 3-7 px
    4 rings     concentric rings around a random centre, period 4-8 px
    5 dots      square lattice of round dots, period 5-10 px
    6 grid      thin axis-aligned grid lines, period 5-10 px
    7 waves     horizontal wavy stripes (amplitude 1.5-3.5 px, wavelength 9-16 px)
    8 blobs     maze-like blobs: thresholded band-pass noise, feature size 4-8 px, no orientation
    9 bricks    brick wall: horizontal mortar lines and staggered vertical joints

Class ``r`` is also the rank by training count: class 0 is the head, class 9 the tail. Class ``r`` has
``floor(500 * 0.05 ** (r / 9))`` training images (500, 358, 256, 184, 132, 94, 67, 48, 34, 25; imbalance
ratio 20, see ``train_class_counts()``). The test set is balanced: 100 per class.

Out-of-distribution (OOD) pool: 10,000 images, 70% far-OOD and 30% near-OOD. ``ood_family`` names the
generator of each image (``OOD_FAMILY_NAMES``); it is for analysis only, never for training.

    far-OOD (1750 each)
    0 smooth    smooth random colour field (low-frequency noise in each channel)
    1 polygons  overlapping random flat-coloured triangles on a random background
    2 gradient  linear or radial colour gradients between two random colours
    3 noise     colourful high-frequency noise texture (1/f^beta, beta 0-1, per channel)
    near-OOD (1000 each): two-tone textures drawn like the ID classes, with geometry never used in ID
    4 oblique   straight stripes at 22.5 +- 4.5 degrees off an axis (ID stripes are at 0, 45, 90 +- 8)
    5 hexdots   dots on a hexagonal (triangular) lattice (ID dots are on a square lattice)
    6 spiral    1-3 armed Archimedean spirals (ID rings are closed circles)

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

SYNTHETIC_VERSION = 1
IMAGE_SIZE = 32
CLASS_NAMES = ("hstripes", "vstripes", "diagonal", "checker", "rings", "dots", "grid", "waves", "blobs", "bricks")
HEAD_COUNT = 500
IMBALANCE_RATIO = 20
TEST_PER_CLASS = 100
OOD_FAMILY_NAMES = ("smooth", "polygons", "gradient", "noise", "oblique", "hexdots", "spiral")
OOD_FAMILY_NEAR = (False, False, False, False, True, True, True)
OOD_FAMILY_COUNTS = (1750, 1750, 1750, 1750, 1000, 1000, 1000)
OOD_SIZE = sum(OOD_FAMILY_COUNTS)
KEYS = ("train_x", "train_y", "test_x", "test_y", "ood_x", "ood_family", "class_names")

_S = IMAGE_SIZE
# Pixel-centre coordinates, origin at the image centre, x to the right, y down; shape (1, 32, 32) so that
# per-image parameters of shape (n, 1, 1) broadcast against them.
_Y, _X = (a[None].astype(np.float32) - (_S - 1) / 2 for a in np.mgrid[0:_S, 0:_S])
# Frequencies (cycles / pixel) of a real 2-D FFT of a 32x32 image.
_FREQ = np.sqrt(np.fft.fftfreq(_S)[:, None] ** 2 + np.fft.rfftfreq(_S)[None, :] ** 2).astype(np.float32)


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


def _rotate(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates along (u) and across (v) direction ``theta`` (radians)."""
    c, s = np.cos(theta), np.sin(theta)
    return _X * c + _Y * s, -_X * s + _Y * c


def _bandpass_noise(rng: np.random.Generator, shape: tuple, gain: np.ndarray) -> np.ndarray:
    """White noise of ``shape`` (..., 32, 32) filtered by ``gain`` (broadcasts against (..., 32, 17)),
    normalised to unit standard deviation per image map."""
    noise = rng.standard_normal(shape, dtype=np.float32)
    field = np.fft.irfft2(np.fft.rfft2(noise) * gain, s=(_S, _S)).astype(np.float32)
    field -= field.mean(axis=(-2, -1), keepdims=True)
    return field / (field.std(axis=(-2, -1), keepdims=True) + 1e-6)


def _stripes(rng, n, angles_deg, jitter_deg, period=(4.0, 9.0)):
    """Straight stripes whose normal is at one of ``angles_deg`` (chosen per image) +- jitter."""
    base = np.asarray(angles_deg, np.float32)[rng.integers(0, len(angles_deg), size=(n, 1, 1))]
    theta = np.deg2rad(base + _u(rng, n, -jitter_deg, jitter_deg))
    u, _ = _rotate(theta)
    p = _u(rng, n, *period)
    return _wave(2 * np.pi * u / p + _u(rng, n, 0, 2 * np.pi), _u(rng, n, 1.0, 6.0))


def _dot_lattice(rng, n, hexagonal):
    p = _u(rng, n, 5.0, 10.0)
    u, v = _rotate(np.deg2rad(_u(rng, n, -8, 8)))
    u, v = u + _u(rng, n, 0, 100), v + _u(rng, n, 0, 100)
    radius = p * _u(rng, n, 0.2, 0.32)
    # A square lattice of period p; a triangular lattice is two rectangular (p, p*sqrt 3) lattices offset
    # by half a cell.
    py = p * np.float32(math.sqrt(3)) if hexagonal else p
    dist = np.hypot(_centred_frac(u / p) * p, _centred_frac(v / py) * py)
    if hexagonal:
        dist = np.minimum(dist, np.hypot(_centred_frac(u / p + 0.5) * p, _centred_frac(v / py + 0.5) * py))
    return _soft(dist, radius)


def _hstripes(rng, n):
    return _stripes(rng, n, [90.0], 8.0)


def _vstripes(rng, n):
    return _stripes(rng, n, [0.0], 8.0)


def _diagonal(rng, n):
    return _stripes(rng, n, [45.0, 135.0], 8.0)


def _checker(rng, n):
    p = _u(rng, n, 6.0, 14.0)  # a full period is two squares
    u, v = _rotate(np.deg2rad(_u(rng, n, -6, 6)))
    s = np.sin(2 * np.pi * u / p + _u(rng, n, 0, 2 * np.pi)) * np.sin(2 * np.pi * v / p + _u(rng, n, 0, 2 * np.pi))
    return 0.5 + 0.5 * np.clip(_u(rng, n, 3.0, 10.0) * s, -1.0, 1.0)


def _rings(rng, n):
    r = np.hypot(_X - _u(rng, n, -12, 12), _Y - _u(rng, n, -12, 12))
    return _wave(2 * np.pi * r / _u(rng, n, 4.0, 8.0) + _u(rng, n, 0, 2 * np.pi), _u(rng, n, 1.0, 6.0))


def _dots(rng, n):
    return _dot_lattice(rng, n, hexagonal=False)


def _grid(rng, n):
    p = _u(rng, n, 5.0, 10.0)
    u, v = _rotate(np.deg2rad(_u(rng, n, -6, 6)))
    half = _u(rng, n, 0.5, 1.0)
    dist = np.minimum(np.abs(_centred_frac(u / p + _u(rng, n, 0, 1))), np.abs(_centred_frac(v / p + _u(rng, n, 0, 1)))) * p
    return _soft(dist, half)


def _waves(rng, n):
    wavelength = _u(rng, n, 9.0, 16.0)
    y = _Y + _u(rng, n, 1.5, 3.5) * np.sin(2 * np.pi * _X / wavelength + _u(rng, n, 0, 2 * np.pi))
    return _wave(2 * np.pi * y / _u(rng, n, 5.0, 9.0) + _u(rng, n, 0, 2 * np.pi), _u(rng, n, 1.5, 6.0))


def _blobs(rng, n):
    f0 = 1.0 / _u(rng, n, 9.0, 15.0)  # wavelength of 9-15 px: blobs of 4-8 px
    field = _bandpass_noise(rng, (n, _S, _S), np.exp(-0.5 * ((_FREQ - f0) / 0.025) ** 2))
    return 0.5 + 0.5 * np.clip(_u(rng, n, 2.0, 8.0) * field, -1.0, 1.0)


def _bricks(rng, n):
    h = _u(rng, n, 5.0, 9.0)
    length = h * _u(rng, n, 1.8, 2.8)
    y = _Y + _u(rng, n, 0, 100)
    x = _X + _u(rng, n, 0, 100)
    row = np.floor(y / h)
    half = _u(rng, n, 0.5, 0.9)
    hline = np.abs(_centred_frac(y / h)) * h
    vline = np.abs(_centred_frac(x / length + 0.5 * (row % 2))) * length
    return _soft(np.minimum(hline, vline), half)


_CLASS_DRAW = (_hstripes, _vstripes, _diagonal, _checker, _rings, _dots, _grid, _waves, _blobs, _bricks)


def _oblique(rng, n):
    return _stripes(rng, n, [22.5, 67.5, 112.5, 157.5], 4.5)


def _hexdots(rng, n):
    return _dot_lattice(rng, n, hexagonal=True)


def _spiral(rng, n):
    x, y = _X - _u(rng, n, -8, 8), _Y - _u(rng, n, -8, 8)
    arms = rng.integers(1, 4, size=(n, 1, 1)) * rng.choice(np.array([-1, 1]), size=(n, 1, 1))
    t = np.hypot(x, y) / _u(rng, n, 4.0, 8.0) + arms.astype(np.float32) * np.arctan2(y, x) / np.float32(2 * np.pi)
    return _wave(2 * np.pi * t + _u(rng, n, 0, 2 * np.pi), _u(rng, n, 1.5, 6.0))


# ----------------------------------------------------------------------------------------------------
# Colouring.

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


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


def _to_uint8(img: np.ndarray) -> np.ndarray:
    return np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)


def _pixel_noise(rng, n):
    return _u(rng, n, 0.0, 0.05)[..., None] * rng.standard_normal((n, _S, _S, 3), dtype=np.float32)


def _two_tone(rng: np.random.Generator, pattern_fn, n: int) -> np.ndarray:
    """n images of a pattern drawn in a random pair of colours, plus pixel noise: (n, 32, 32, 3) uint8."""
    pattern = pattern_fn(rng, n)[..., None]
    fg, bg = _colour_pairs(rng, n)
    img = bg[:, None, None, :] + pattern * (fg - bg)[:, None, None, :]
    return _to_uint8(img + _pixel_noise(rng, n))


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


_OOD_DRAW = (
    _ood_smooth,
    _ood_polygons,
    _ood_gradient,
    _ood_noise,
    lambda rng, n: _two_tone(rng, _oblique, n),
    lambda rng, n: _two_tone(rng, _hexdots, n),
    lambda rng, n: _two_tone(rng, _spiral, n),
)


# ----------------------------------------------------------------------------------------------------

def _labelled_set(ss: np.random.SeedSequence, counts: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Images of every class (one child generator per class), then shuffled by a further child."""
    children = ss.spawn(len(counts) + 1)
    xs = [_two_tone(np.random.default_rng(children[c]), _CLASS_DRAW[c], count) for c, count in enumerate(counts)]
    ys = [np.full(count, c, np.int64) for c, count in enumerate(counts)]
    order = np.random.default_rng(children[-1]).permutation(sum(counts))
    return np.concatenate(xs)[order], np.concatenate(ys)[order]


def generate_synthetic(seed: int = 0) -> dict[str, np.ndarray]:
    """All arrays of the synthetic dataset for ``seed`` (deterministic; about a second on one core).

    train_x (N, 32, 32, 3) uint8 HWC, train_y (N,) int64 with N = sum(train_class_counts());
    test_x (1000, 32, 32, 3) uint8, test_y (1000,) int64 (100 per class);
    ood_x (10000, 32, 32, 3) uint8, ood_family (10000,) int64 indexing OOD_FAMILY_NAMES;
    class_names (10,) fixed-width unicode.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    train_ss, test_ss, ood_ss = np.random.SeedSequence(int(seed)).spawn(3)
    train_x, train_y = _labelled_set(train_ss, train_class_counts())
    test_x, test_y = _labelled_set(test_ss, [TEST_PER_CLASS] * len(CLASS_NAMES))

    children = ood_ss.spawn(len(OOD_FAMILY_COUNTS) + 1)
    ood = [draw(np.random.default_rng(children[f]), count) for f, (draw, count) in enumerate(zip(_OOD_DRAW, OOD_FAMILY_COUNTS))]
    family = np.concatenate([np.full(count, f, np.int64) for f, count in enumerate(OOD_FAMILY_COUNTS)])
    order = np.random.default_rng(children[-1]).permutation(OOD_SIZE)
    return {
        "train_x": train_x, "train_y": train_y,
        "test_x": test_x, "test_y": test_y,
        "ood_x": np.concatenate(ood)[order], "ood_family": family[order],
        "class_names": np.array(CLASS_NAMES, dtype=f"<U{max(map(len, CLASS_NAMES))}"),
    }


def _check_arrays(arrays: dict[str, np.ndarray]) -> None:
    missing = [k for k in KEYS if k not in arrays]
    if missing:
        raise ValueError(f"missing arrays {missing}")
    for k in ("train", "test", "ood"):
        x, y = arrays[f"{k}_x"], arrays["ood_family" if k == "ood" else f"{k}_y"]
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != (_S, _S, 3):
            raise ValueError(f"{k}_x: expected (N, {_S}, {_S}, 3) uint8, got {x.shape} {x.dtype}")
        if y.dtype != np.int64 or y.shape != x.shape[:1]:
            raise ValueError(f"labels of {k}: expected ({len(x)},) int64, got {y.shape} {y.dtype}")


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


def save_grid(arrays: dict[str, np.ndarray], out: str | os.PathLike, per_row: int = 8, ood_rows: int = 2) -> None:
    """A PNG with one row of training samples per class and ``ood_rows`` rows of OOD samples."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [str(s) for s in arrays["class_names"]]
    rows = len(names) + ood_rows
    fig, axes = plt.subplots(rows, per_row, figsize=(per_row * 0.9 + 1.2, rows * 0.95))
    for c, name in enumerate(names):
        idx = np.flatnonzero(arrays["train_y"] == c)[:per_row]
        for j in range(per_row):
            ax = axes[c, j]
            if j < len(idx):
                ax.imshow(arrays["train_x"][idx[j]], interpolation="nearest")
            if j == 0:
                ax.set_ylabel(f"{c} {name}", rotation=0, ha="right", va="center", fontsize=8)
    # OOD: cycle through the families so every one shows up.
    fam = arrays["ood_family"]
    firsts = [np.flatnonzero(fam == f) for f in range(len(OOD_FAMILY_NAMES))]
    picks = [firsts[i % len(firsts)][i // len(firsts)] for i in range(ood_rows * per_row)]
    for i, k in enumerate(picks):
        ax = axes[len(names) + i // per_row, i % per_row]
        ax.imshow(arrays["ood_x"][k], interpolation="nearest")
        f = int(fam[k])
        ax.set_title(f"{OOD_FAMILY_NAMES[f]}{' (near)' if OOD_FAMILY_NEAR[f] else ''}", fontsize=6, pad=2)
        if i % per_row == 0:
            ax.set_ylabel("OOD", rotation=0, ha="right", va="center", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
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
