"""The generated long-tailed dataset: shapes, counts, determinism, the cache file, and a cheap check that
the class is carried by the geometry (FFT spectrum) rather than by colour or position."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import data.synthetic as syn


@pytest.fixture(scope="module")
def arrays():
    return syn.generate_synthetic(0)


def test_shapes_dtypes_and_counts(arrays):
    counts = syn.train_class_counts()
    assert len(counts) == len(syn.CLASS_NAMES) == 10
    assert counts[0] == 500 and counts[-1] == 25
    assert counts == sorted(counts, reverse=True)  # class 0 is the head
    assert counts[0] / counts[-1] >= 10
    assert list(arrays["class_names"]) == list(syn.CLASS_NAMES)
    assert arrays["class_names"].dtype.kind == "U"

    for part, n in (("train", sum(counts)), ("test", 100 * 10), ("ood", syn.OOD_SIZE)):
        x = arrays[f"{part}_x"]
        assert x.shape == (n, 32, 32, 3) and x.dtype == np.uint8
        assert x.std() > 20  # images are not blank
    assert syn.OOD_SIZE == 6000
    for key in ("train_y", "test_y", "ood_near_class", "ood_far_family"):
        assert arrays[key].dtype == np.int64, key
    assert np.bincount(arrays["train_y"], minlength=10).tolist() == counts
    assert np.bincount(arrays["test_y"], minlength=10).tolist() == [100] * 10


def test_pool_relations(arrays):
    near, far = arrays["ood_near_class"], arrays["ood_far_family"]
    assert near.shape == far.shape == (syn.OOD_SIZE,)
    assert ((near >= 0) != (far >= 0)).all()  # every item is near one class or of one far family
    assert np.bincount(near[near >= 0], minlength=10).tolist() == [syn.NEAR_PER_CLASS] * 10  # near-head = near-tail
    assert np.bincount(far[far >= 0]).tolist() == [syn.FAR_PER_FAMILY] * len(syn.FAR_FAMILY_NAMES)
    assert (near >= 0).mean() == 1 / 3
    # Shuffled: a prefix of the pool holds every class's near items and every far family.
    assert set(near[:300]) == set(range(-1, 10)) and set(far[:300]) == set(range(-1, len(syn.FAR_FAMILY_NAMES)))


def test_images_are_windows_of_their_prototypes():
    """The vectorised windows (bilinear, zoomed or not) against a per-pixel loop over one prototype set."""
    protos = syn.class_prototypes(0)[3]
    assert protos.patterns.shape == (syn.PROTOTYPES_PER_CLASS, syn.PROTOTYPE_SIZE, syn.PROTOTYPE_SIZE)
    for zoom in (None, (1.6, 2.2)):
        rng = np.random.default_rng(5)
        images = protos.images(rng, 3, zoom=zoom)
        rng = np.random.default_rng(5)  # replay the draws in the order images() makes them
        start = rng.integers(0, len(protos.patterns))
        factor = np.ones(3) if zoom is None else rng.uniform(*zoom, size=3).astype(np.float32)
        width = (32 / factor).astype(np.float32)
        top = rng.uniform(0, syn.PROTOTYPE_SIZE - width).astype(np.float32)
        left = rng.uniform(0, syn.PROTOTYPE_SIZE - width).astype(np.float32)
        fg = np.clip(protos.fg[(start + np.arange(3)) % len(protos.patterns)]
                     + rng.uniform(-syn.IMAGE_COLOUR_JITTER, syn.IMAGE_COLOUR_JITTER, (3, 3)), 0, 1)
        bg = np.clip(protos.bg[(start + np.arange(3)) % len(protos.patterns)]
                     + rng.uniform(-syn.IMAGE_COLOUR_JITTER, syn.IMAGE_COLOUR_JITTER, (3, 3)), 0, 1)
        noise = syn._pixel_noise(rng, 3)
        for k in range(3):
            pattern = protos.patterns[(start + k) % len(protos.patterns)]
            expected = np.empty((32, 32, 3))
            for i in range(32):
                for j in range(32):
                    y = min(max(top[k] + (i + 0.5) / 32 * width[k] - 0.5, 0), syn.PROTOTYPE_SIZE - 1)
                    x = min(max(left[k] + (j + 0.5) / 32 * width[k] - 0.5, 0), syn.PROTOTYPE_SIZE - 1)
                    y0, x0 = int(np.floor(y)), int(np.floor(x))
                    y1, x1 = min(y0 + 1, syn.PROTOTYPE_SIZE - 1), min(x0 + 1, syn.PROTOTYPE_SIZE - 1)
                    wy, wx = y - y0, x - x0
                    value = ((1 - wy) * ((1 - wx) * pattern[y0, x0] + wx * pattern[y0, x1])
                             + wy * ((1 - wx) * pattern[y1, x0] + wx * pattern[y1, x1]))
                    expected[i, j] = bg[k] + value * (fg[k] - bg[k]) + noise[k, i, j]
            want = np.round(np.clip(expected, 0, 1) * 255)
            assert np.abs(images[k].astype(float) - want).max() <= 1, (zoom, k)


def test_training_images_crowd_by_class_count(arrays):
    """The premise the dataset is built for: an image's near-duplicates (windows of its prototype) are more
    numerous in a head class, in pixel space already (mean of its 10 largest cosine similarities to other
    images of a random batch of 256, per class)."""
    rng = np.random.default_rng(0)
    x = arrays["train_x"].reshape(len(arrays["train_x"]), -1).astype(np.float32)
    x -= x.mean(axis=1, keepdims=True)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    scores = np.zeros(len(x))
    for _ in range(20):
        batch = rng.choice(len(x), size=256, replace=False)
        sim = x[batch] @ x[batch].T
        np.fill_diagonal(sim, -np.inf)
        scores[batch] += np.sort(sim, axis=1)[:, -10:].mean(axis=1)
    means = [scores[arrays["train_y"] == c].mean() for c in range(10)]
    assert means[0] > means[4] > means[9], means


def test_deterministic(arrays):
    again = syn.generate_synthetic(0)
    assert again.keys() == arrays.keys()
    for k in arrays:
        assert again[k].dtype == arrays[k].dtype and np.array_equal(again[k], arrays[k]), k
    other = syn.generate_synthetic(1)
    assert not np.array_equal(other["train_x"], arrays["train_x"])
    assert not np.array_equal(other["ood_x"], arrays["ood_x"])


def test_ood_size_does_not_change_id_images(monkeypatch, arrays):
    monkeypatch.setattr(syn, "FAR_PER_FAMILY", 5)
    monkeypatch.setattr(syn, "NEAR_PER_CLASS", 3)
    small = syn.generate_synthetic(0)
    assert small["ood_x"].shape == (50, 32, 32, 3)
    for k in ("train_x", "train_y", "test_x", "test_y"):
        assert np.array_equal(small[k], arrays[k]), k


def test_grid_png(tmp_path, arrays):
    out = tmp_path / "grid.png"
    syn.save_grid(arrays, out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_seed():
    with pytest.raises(ValueError):
        syn.generate_synthetic(-1)


def test_cache_written_once_and_reused(tmp_path, monkeypatch, arrays):
    calls = []

    def fake_generate(seed=0):
        calls.append(seed)
        return {k: v.copy() for k, v in arrays.items()}

    monkeypatch.setattr(syn, "generate_synthetic", fake_generate)
    root = tmp_path / "new" / "dir"  # created on demand
    first = syn.load_synthetic(root, seed=0)
    path = root / f"synthetic_v{syn.SYNTHETIC_VERSION}_seed0.npz"
    assert path.is_file() and calls == [0]
    assert [p.name for p in root.iterdir()] == [path.name]  # no temporary file left behind
    mtime = path.stat().st_mtime_ns

    second = syn.load_synthetic(root, seed=0)
    assert calls == [0]  # read from the file, not generated again
    assert path.stat().st_mtime_ns == mtime
    for k in arrays:
        assert np.array_equal(first[k], arrays[k]) and np.array_equal(second[k], arrays[k]), k
        assert second[k].dtype == arrays[k].dtype, k


def test_corrupt_cache_raises(tmp_path, monkeypatch):
    monkeypatch.setattr(syn, "generate_synthetic", lambda seed=0: pytest.fail("must not regenerate"))
    path = tmp_path / f"synthetic_v{syn.SYNTHETIC_VERSION}_seed3.npz"
    path.write_bytes(b"PK\x03\x04 this is not a complete npz file")
    with pytest.raises(ValueError, match="delete") as info:
        syn.load_synthetic(tmp_path, seed=3)
    assert str(path) in str(info.value)

    np.savez(path, train_x=np.zeros((2, 32, 32, 3), np.uint8))  # readable, but not our arrays
    with pytest.raises(ValueError, match=str(path).replace("\\", "\\\\")):
        syn.load_synthetic(tmp_path, seed=3)


def test_default_root(monkeypatch, tmp_path):
    monkeypatch.setenv("LTSSL_DATA", str(tmp_path))
    assert syn.default_synthetic_root() == tmp_path / "synthetic"
    monkeypatch.delenv("LTSSL_DATA")
    assert syn.default_synthetic_root() == Path.home() / ".cache" / "ltssl" / "synthetic"


# --- The class is geometry: nearest class-mean on FFT spectra --------------------------------------------

_N = 32
_HANN = np.outer(np.hanning(_N + 2)[1:-1], np.hanning(_N + 2)[1:-1])


def _spectrum_bins(n_angle: int = 8, n_radius: int = 6) -> np.ndarray:
    """Bin of every FFT frequency: orientation (folded so that a horizontal flip keeps the bin) x
    log-radius; -1 for the DC term."""
    fy, fx = np.fft.fftfreq(_N)[:, None], np.fft.fftfreq(_N)[None, :]
    radius = np.hypot(fx, fy)
    angle = np.mod(np.arctan2(fy, fx), np.pi)
    angle = np.minimum(angle, np.pi - angle)  # in [0, pi/2]; a flip maps angle -> pi - angle
    a_bin = np.minimum((angle / (np.pi / 2) * n_angle).astype(int), n_angle - 1)
    lo, hi = np.log2(1 / _N), np.log2(np.sqrt(0.5))
    r_bin = np.clip(((np.log2(np.maximum(radius, 1 / _N)) - lo) / (hi - lo) * n_radius).astype(int), 0, n_radius - 1)
    bins = a_bin * n_radius + r_bin
    bins[radius == 0] = -1
    return bins.ravel()


_BINS = _spectrum_bins()


def _perturb(x: np.ndarray, rng: np.random.Generator, min_side: int = 28) -> np.ndarray:
    """Augmentation-like: grayscale with random channel weights (colour carries no class), a random
    square crop of side min_side..32 resized back to 32 (nearest), a random horizontal flip."""
    n = len(x)
    gray = np.einsum("nhwc,nc->nhw", x.astype(np.float64), rng.dirichlet(np.ones(3), size=n))
    side = rng.integers(min_side, _N + 1, size=n)
    top, left = (rng.integers(0, _N - side + 1) for _ in range(2))
    idx = np.arange(_N)[None, :] * side[:, None] // _N
    rows, cols = top[:, None] + idx, left[:, None] + idx
    gray = gray[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
    flip = rng.random(n) < 0.5
    gray[flip] = gray[flip, :, ::-1]
    return gray


def _fft_features(gray: np.ndarray) -> np.ndarray:
    """Unit-norm FFT magnitude spectrum (mean removed, Hann window) pooled into orientation x radius bins."""
    g = (gray - gray.mean(axis=(1, 2), keepdims=True)) * _HANN
    power = (np.abs(np.fft.fft2(g)) ** 2).reshape(len(g), -1)
    keep = _BINS >= 0
    pooled = np.zeros((len(g), _BINS.max() + 1))
    np.add.at(pooled.T, _BINS[keep], power[:, keep].T)
    f = np.sqrt(pooled)
    return f / np.linalg.norm(f, axis=1, keepdims=True)


def test_classes_separable_by_fft_spectrum(arrays):
    rng = np.random.default_rng(0)
    centroids = []
    for c in range(len(syn.CLASS_NAMES)):
        idx = np.flatnonzero(arrays["train_y"] == c)[:20]
        assert len(idx) == 20
        centroids.append(_fft_features(_perturb(arrays["train_x"][idx], rng)).mean(axis=0))
    centroids = np.stack(centroids)
    pred = np.argmax(_fft_features(_perturb(arrays["test_x"], rng)) @ centroids.T, axis=1)
    accuracy = (pred == arrays["test_y"]).mean()
    # About 0.76 for seed 0 (chance 0.1). A weak proxy on purpose: e.g. checkerboards and diagonal stripes
    # share their fundamental frequencies, which a CNN tells apart easily but spectra barely do.
    assert accuracy > 0.7, accuracy
