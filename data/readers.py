"""Readers: how a dataset of the registry (``data.registry``) turns a data root and split names into datasets
of uint8 images. ``data.build`` calls them; a new dataset needs one (usually ``ArrayReader(load)``).

Every method takes the dataset's registry entry, for its name in messages and its split lookup.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from data.datasets import ArrayImageDataset, ImageListDataset, load_split_file


class ArrayReader:
    """A dataset held as arrays: ``load(root, train)`` returns uint8 images (N, H, W, 3) and int64 labels of
    its training (``train`` True) or test images. Splits are ``.npy`` index files into the training images."""

    def __init__(self, load):
        self.load = load

    def default_root(self) -> Path | None:
        """Where the data lie when ``--data`` is not given (None: it must be given)."""
        return None

    def train_set(self, entry, root: Path, split_path: Path | None, transform=None):
        images, labels = self.load(root, True)
        indices = None if split_path is None else load_split_file(split_path, len(images))
        return ArrayImageDataset(images, labels, indices, transform=transform)

    def test_set(self, entry, root: Path, test_split: str | None):
        return ArrayImageDataset(*self.load(root, False))

    def probe_indices(self, entry, labels: np.ndarray, split: str) -> np.ndarray:
        from data.build import resolve_split
        return load_split_file(resolve_split(split, entry.name), len(labels))

    def eval_sets(self, entry, root: Path, train_split: str, val_split: str, test_split: str | None):
        test_set = self.test_set(entry, root, test_split)
        x, y = self.load(root, True)
        return (ArrayImageDataset(x, y, self.probe_indices(entry, y, train_split)),
                ArrayImageDataset(x, y, self.probe_indices(entry, y, val_split)), test_set)


def _read_cifar(dataset: str):
    def load(root, train):
        from data.cifar import read_cifar
        return read_cifar(root, dataset, train=train)
    return load


def _read_synthetic(root, train):
    from data.synthetic import load_synthetic
    arrays = load_synthetic(root)
    return (arrays["train_x"], arrays["train_y"]) if train else (arrays["test_x"], arrays["test_y"])


# Balanced probe splits of the synthetic training set, per class: "full" the first 20 images, "few" the
# first 2 of those, "val" the next 5 (the tail class has 25). Positions follow the set's fixed order.
SYNTHETIC_PROBE_SPLITS = {"full": (0, 20), "few": (0, 2), "val": (20, 25)}


def synthetic_probe_split(labels: np.ndarray, name: str) -> np.ndarray:
    if name not in SYNTHETIC_PROBE_SPLITS:
        raise ValueError(f"synthetic probe split must be one of {', '.join(SYNTHETIC_PROBE_SPLITS)}, got {name!r}")
    lo, hi = SYNTHETIC_PROBE_SPLITS[name]
    return np.concatenate([np.flatnonzero(labels == c)[lo:hi] for c in np.unique(labels)])


class SyntheticReader(ArrayReader):
    """The embedded dataset: generated on first use into a cache folder; probe splits are names."""

    def __init__(self):
        super().__init__(_read_synthetic)

    def default_root(self) -> Path:
        from data.synthetic import default_synthetic_root
        return default_synthetic_root()

    def probe_indices(self, entry, labels, split):
        return synthetic_probe_split(labels, split)

    def eval_sets(self, entry, root, train_split, val_split, test_split):
        from data.synthetic import load_synthetic
        arrays = load_synthetic(root)  # one read for the three sets
        x, y = arrays["train_x"], arrays["train_y"]
        return (ArrayImageDataset(x, y, synthetic_probe_split(y, train_split)),
                ArrayImageDataset(x, y, synthetic_probe_split(y, val_split)),
                ArrayImageDataset(arrays["test_x"], arrays["test_y"]))


class ImageListReader:
    """Image files under a root, every split a list of ``relative/path label`` lines (ImageNet-100, Places)."""

    def default_root(self) -> Path | None:
        return None

    def train_set(self, entry, root, split_path, transform=None):
        if split_path is None:
            raise ValueError(f"--trainSplit is required for {entry.name}: a list of 'relative/path label' lines")
        return ImageListDataset(root, split_path, transform=transform)

    def test_set(self, entry, root, test_split):
        from data.build import resolve_split
        if test_split is None:
            raise ValueError(f"--testSplit is required for {entry.name}: the list of test images")
        return ImageListDataset(root, resolve_split(test_split, entry.name))

    def eval_sets(self, entry, root, train_split, val_split, test_split):
        from data.build import resolve_split
        test_set = self.test_set(entry, root, test_split)
        lists = [resolve_split(s, entry.name) for s in (train_split, val_split)]
        return (*(ImageListDataset(root, path) for path in lists), test_set)


SYNTHETIC = SyntheticReader()
CIFAR10 = ArrayReader(_read_cifar("cifar10"))
CIFAR100 = ArrayReader(_read_cifar("cifar100"))
IMAGE_LIST = ImageListReader()
