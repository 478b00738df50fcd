"""Thin datasets over image arrays and image lists. Items are ``(image, label, index)`` with the image a
uint8 CHW tensor; ``index`` is the item's position in this dataset (what per-sample scores are keyed by)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset


def check_indices(indices: np.ndarray, size: int, source: str) -> np.ndarray:
    """A split must be a 1-D integer array of in-range, unique positions."""
    indices = np.asarray(indices)
    if indices.ndim != 1 or not np.issubdtype(indices.dtype, np.integer):
        raise ValueError(f"{source}: expected a 1-D integer array of indices, got shape {indices.shape} "
                         f"dtype {indices.dtype}")
    if indices.size and (indices.min() < 0 or indices.max() >= size):
        raise ValueError(f"{source}: indices out of range [0, {size}) (min {indices.min()}, max {indices.max()})")
    if np.unique(indices).size != indices.size:
        raise ValueError(f"{source}: indices repeat")
    return indices.astype(np.int64)


def load_split_file(path: str | Path, size: int) -> np.ndarray:
    """Read a split of the original releases: one int64 ``.npy`` array of indices into the full set."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"split file not found: {path}")
    with open(path, "rb") as f:
        head = f.read(512)
    if not head.startswith(b"\x93NUMPY") and b"\0" not in head:
        raise ValueError(f"{path} is a text file, not a .npy index file: CIFAR and synthetic splits are .npy "
                         f"arrays of indices (image lists are for ImageNet-100 and Places)")
    try:
        indices = np.load(path, allow_pickle=False)
    except Exception as e:
        raise ValueError(f"{path}: not a .npy index array ({e})") from e
    return check_indices(indices, size, str(path))


class ArrayImageDataset(Dataset):
    """Images held in one uint8 (N, H, W, 3) array (possibly memory-mapped), optionally restricted to a subset.

    Nothing is copied: items are sliced out on access, so a memory-mapped pool stays shared by workers.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray | None = None, indices: np.ndarray | None = None,
                 transform=None):
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(f"expected uint8 images of shape (N, H, W, 3), got {images.shape} {images.dtype}")
        if labels is not None and len(labels) != len(images):
            raise ValueError(f"{len(labels)} labels for {len(images)} images")
        self.images = images
        self.all_labels = None if labels is None else np.asarray(labels, dtype=np.int64)
        self.indices = np.arange(len(images)) if indices is None else check_indices(indices, len(images), "split")
        self.transform = transform

    @property
    def labels(self) -> np.ndarray:
        """Labels of the items (-1 where the source has none)."""
        if self.all_labels is None:
            return np.full(len(self.indices), -1, dtype=np.int64)
        return self.all_labels[self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        j = self.indices[i]
        image = torch.from_numpy(np.array(self.images[j])).permute(2, 0, 1)  # a copy: memmaps are read-only
        if self.transform is not None:
            image = self.transform(image)
        label = -1 if self.all_labels is None else int(self.all_labels[j])
        return image, label, i


def read_image_list(list_file: str | Path) -> tuple[list[str], np.ndarray]:
    """Parse ``relative/path.JPEG label`` lines (the original releases' format); blank lines are skipped."""
    list_file = Path(list_file)
    if not list_file.is_file():
        raise FileNotFoundError(f"image list not found: {list_file}")
    try:
        text = list_file.read_text()
    except UnicodeDecodeError as e:
        raise ValueError(f"{list_file}: not a text list of 'relative/path label' lines ({e.reason} at byte "
                         f"{e.start})") from e
    paths, labels = [], []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.rsplit(maxsplit=1)
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise ValueError(f"{list_file}:{line_no}: expected 'relative/path label', got {line!r}")
        paths.append(parts[0])
        labels.append(int(parts[1]))
    if not paths:
        raise ValueError(f"{list_file}: no images listed")
    return paths, np.asarray(labels, dtype=np.int64)


class ImageDecodeError(ValueError):
    """An image file that exists but cannot be decoded; the message names the file."""


def decode_error_message(error: ImageDecodeError) -> str:
    """The one-line message of an ImageDecodeError, also when a DataLoader worker re-raised it with the
    worker's traceback folded into the message."""
    text = str(error).strip()
    last = text.splitlines()[-1] if text else "cannot decode an image"
    return last.split(f"{type(error).__name__}: ", 1)[-1]


def decode_rgb(path: str | Path) -> torch.Tensor:
    """Decode any PIL-readable image to a uint8 RGB CHW tensor (ImageDecodeError naming the file if not)."""
    try:
        with Image.open(path) as img:
            array = np.asarray(img.convert("RGB"))
    except (OSError, ValueError, SyntaxError) as e:  # PIL's errors for truncated or foreign files
        raise ImageDecodeError(f"cannot decode image {path}: {e}") from None
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


def image_size(dataset) -> tuple[int, int]:
    """(height, width) of a dataset's images: the array's for arrays, the first file's for image files."""
    if isinstance(dataset, ArrayImageDataset):
        return tuple(int(n) for n in dataset.images.shape[1:3])
    if isinstance(dataset, ImageFilesDataset):
        image = decode_rgb(dataset.root / dataset.paths[0])
        return int(image.shape[1]), int(image.shape[2])
    raise TypeError(f"no image size for {type(dataset).__name__}")


class ImageFilesDataset(Dataset):
    """Image files under ``root``, named by relative paths, decoded on access; ``labels`` -1 where unknown."""

    def __init__(self, root: str | Path, paths: list[str], labels: np.ndarray, transform=None):
        self.root, self.paths, self._labels = Path(root), paths, np.asarray(labels, dtype=np.int64)
        self.transform = transform

    @property
    def labels(self) -> np.ndarray:
        return self._labels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        image = decode_rgb(self.root / self.paths[i])
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self._labels[i]), i


class ImageListDataset(ImageFilesDataset):
    """Images under ``root`` named by a text list of ``relative/path label`` lines (ImageNet-100-LT, Places-LT)."""

    def __init__(self, root: str | Path, list_file: str | Path, transform=None):
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"image root not found: {root}")
        paths, labels = read_image_list(list_file)
        missing = [p for p in paths if not (root / p).is_file()]  # every path up front, not mid-epoch
        if missing:
            raise FileNotFoundError(f"{list_file} names {len(missing)} image(s) that do not exist under {root}, "
                                    f"e.g. {missing[0]}" + (f", {missing[1]}" if len(missing) > 1 else ""))
        super().__init__(root, paths, labels, transform)
