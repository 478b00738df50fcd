"""Out-of-distribution pools, and the COLT training set: the ID set followed by the chosen pool images."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from data.datasets import ArrayImageDataset, ImageFilesDataset, ImageListDataset, check_indices

SAMPLE_SETS = ("synthetic", "300K_random_images", "image_list", "folder")
SAMPLE_SET_ALIASES = {"300k": "300K_random_images", "300k_random_images": "300K_random_images",
                      "ti_300k": "300K_random_images", "imagelist": "image_list"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def random_images_pool(path: str | Path) -> ArrayImageDataset:
    """The 300K Random Images file (uint8, N x 32 x 32 x 3), memory-mapped so DataLoader workers share it."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"OOD pool not found: {path}")
    try:
        images = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as e:
        raise ValueError(f"{path}: not a .npy image array ({e})") from e
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"{path}: expected uint8 images of shape (N, H, W, 3), got {images.dtype} {images.shape}")
    return ArrayImageDataset(images)


class ImageFolderPool(ImageFilesDataset):
    """Every image file under ``root`` (recursively), in sorted relative-path order; label -1."""

    def __init__(self, root: str | Path, transform=None):
        root = Path(root).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(f"OOD image folder not found: {root}")
        paths = sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                       if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not paths:
            raise ValueError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {root}")
        super().__init__(root, paths, np.full(len(paths), -1), transform)


def default_sample_set(dataset: str) -> str:
    return {"synthetic": "synthetic", "cifar10": "300K_random_images",
            "cifar100": "300K_random_images"}.get(dataset, "image_list")


def build_ood_pool(sample_set: str, ood_data: str | None, dataset: str, data_root: str | None,
                   ood_root: str | None = None, transform=None) -> Dataset:
    """The OOD pool named by ``--sample_set``; its path comes from ``--ood_data`` and is never guessed."""
    sample_set = SAMPLE_SET_ALIASES.get(sample_set.lower(), sample_set)
    if sample_set not in SAMPLE_SETS:
        raise ValueError(f"unknown --sample_set {sample_set!r}; choose one of {', '.join(SAMPLE_SETS)}")
    if sample_set == "synthetic":
        from data.synthetic import default_synthetic_root, load_synthetic
        arrays = load_synthetic(data_root if dataset == "synthetic" and data_root else default_synthetic_root())
        pool = ArrayImageDataset(arrays["ood_x"], arrays["ood_family"])  # families: for analysis only
    elif ood_data is None:
        raise ValueError(f"--ood_data is required for --sample_set {sample_set}: the path of the OOD pool")
    elif sample_set == "300K_random_images":
        pool = random_images_pool(ood_data)
    elif sample_set == "folder":
        pool = ImageFolderPool(ood_data)
    else:
        root = ood_root or data_root
        if root is None:
            raise ValueError("--ood_root (or --data) is required for --sample_set image_list: the image root")
        pool = ImageListDataset(Path(root).expanduser(), Path(ood_data).expanduser())
    pool.transform = transform
    return pool


class IdOodDataset(Dataset):
    """The COLT training set: all ID items, then the pool items chosen by the last sampling round.

    Items are ``(image, label, source_index, is_ood)``: ``source_index`` is the position in the ID set or
    in the pool, so per-sample scores stay keyed by ID position whatever the selection.
    """

    def __init__(self, id_set: Dataset, ood_pool: Dataset | None = None):
        self.id_set, self.ood_pool = id_set, ood_pool
        self._ood_indices = np.empty(0, np.int64)

    @property
    def ood_indices(self) -> np.ndarray:
        return self._ood_indices

    def set_ood_indices(self, indices) -> None:
        """Replace the chosen pool items (None or empty: ID only)."""
        if indices is None or len(indices) == 0:
            self._ood_indices = np.empty(0, np.int64)
            return
        if self.ood_pool is None:
            raise ValueError("no OOD pool to choose from")
        self._ood_indices = check_indices(np.asarray(indices), len(self.ood_pool), "OOD selection")

    def __len__(self) -> int:
        return len(self.id_set) + len(self._ood_indices)

    def __getitem__(self, i: int):
        n_id = len(self.id_set)
        if i < n_id:
            image, label, _ = self.id_set[i]
            return image, label, i, False
        j = int(self._ood_indices[i - n_id])
        image, label, _ = self.ood_pool[j]
        return image, label, j, True
