"""Out-of-distribution pools, and the COLT training set: the ID set followed by the chosen pool images.

Every pool is a dataset of uint8 CHW images with items ``(image, label, index)`` like the ID sets (label -1
where the pool has none). Where a pool's files are is always given (``--ood_data``), never guessed.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from data import registry
from data.datasets import ArrayImageDataset, ImageFilesDataset, ImageListDataset, check_indices

IMAGE_SUFFIXES = (".bmp", ".jpeg", ".jpg", ".png", ".webp")


class RandomImagesPool(ArrayImageDataset):
    """The "300K Random Images" file: one ``.npy`` uint8 array (N, H, W, 3), usually 300,000 x 32 x 32 x 3.

    The file is memory-mapped, never read whole: DataLoader workers share the pages of one 0.9 GB file.
    Pickling (workers started by spawn / forkserver, ``copy.copy``) keeps only the path and re-opens the
    map on the other side, so the array is never serialised either.
    """

    def __init__(self, path: str | Path, transform=None, flag: str = "--ood_data"):
        path = Path(path).expanduser()
        super().__init__(self._open(path, flag), transform=transform)
        self.path = path

    @staticmethod
    def _open(path: Path, flag: str = "--ood_data") -> np.memmap:
        if path.is_dir():
            raise ValueError(f"{flag} {path} is a folder: for 300K_random_images it must name the .npy file")
        if not path.is_file():
            raise FileNotFoundError(f"300K Random Images file not found: {path} "
                                    f"({flag} must name the .npy file)")
        try:
            images = np.load(path, mmap_mode="r", allow_pickle=False)
        except Exception as e:  # not a .npy file, or an object array
            raise ValueError(f"{path}: not a .npy array ({type(e).__name__}: {e})") from e
        if not isinstance(images, np.ndarray):  # np.load gives an NpzFile for .npz archives
            raise ValueError(f"{path}: expected a .npy array, found an archive of several arrays")
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"{path}: expected uint8 images of shape (N, H, W, 3), found shape {images.shape} "
                             f"dtype {images.dtype}")
        if len(images) == 0:
            raise ValueError(f"{path}: holds no images (shape {images.shape})")
        return images

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["images"] = None  # re-opened from the path: never pickle the pool's pixels
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.images = self._open(self.path)


class ImageFolderPool(ImageFilesDataset):
    """Every image file (.jpg .jpeg .png .bmp .webp, any case) under ``root``, recursively, in sorted
    relative-path order; label -1."""

    def __init__(self, root: str | Path, transform=None, flag: str = "--ood_data"):
        root = Path(root).expanduser()
        if root.is_file():
            raise ValueError(f"{flag} {root} is a file: for a folder pool it must name a folder of images")
        if not root.is_dir():
            raise FileNotFoundError(f"image folder not found: {root} ({flag} must name a folder)")
        paths = sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                       if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not paths:
            raise ValueError(f"no images ({' '.join(IMAGE_SUFFIXES)}) under {root}")
        super().__init__(root, paths, np.full(len(paths), -1, dtype=np.int64), transform)


def canonical_sample_set(sample_set: str) -> str:
    return registry.canonical_sample_set(sample_set)


def default_sample_set(dataset: str) -> str:
    """The pool each dataset's papers' runs use: its own for synthetic, 300K Random Images for CIFAR,
    an image list (ImageNet-R, Places-69) for ImageNet-100 and Places."""
    return registry.default_sample_set(dataset)


def read_embedded_pool(data_root, dataset: str) -> ArrayImageDataset:
    """The synthetic dataset's own pool, unlabelled (-1) like every pool: how each item relates to the classes
    is for reports only (data/relations.py). From ``data_root`` when the ID dataset is synthetic too, else from
    the default synthetic root."""
    from data.synthetic import load_synthetic
    # Another dataset's --data folder is not the place for the synthetic cache.
    root = Path(data_root).expanduser() if dataset == "synthetic" and data_root else None
    return ArrayImageDataset(load_synthetic(root)["ood_x"])


def read_embedded_pool_relations(data_root, dataset: str) -> np.ndarray:
    """The synthetic pool's items' relation to the ID classes (the class each was drawn near, -1: far)."""
    from data.synthetic import load_synthetic
    root = Path(data_root).expanduser() if dataset == "synthetic" and data_root else None
    return load_synthetic(root)["ood_near_class"]


def read_list_pool(list_file, image_root) -> ImageListDataset:
    return ImageListDataset(Path(image_root).expanduser(), Path(list_file).expanduser())


# What --ood_data names for each pool layout.
LAYOUT_FILES = {"array": "the path of 300K_random_images.npy", "list": "a list file of 'relative/path label' lines",
                "folder": "a folder of images"}


def build_ood_pool(sample_set: str | None, ood_data: str | None, dataset: str, data_root: str | None,
                   ood_root: str | None = None, transform=None) -> Dataset:
    """The OOD pool named by ``--sample_set`` (None: the dataset's default), with ``transform`` set on it.

    synthetic:          the synthetic dataset's own pool (unlabelled; how its items relate to the classes
                        is read by reports only, see data/relations.py), from ``data_root`` when the ID
                        dataset is synthetic too, else from the default synthetic root
                        ($LTSSL_DATA/synthetic or ~/.cache/ltssl/synthetic).
    300K_random_images: ``ood_data`` is the .npy file (memory-mapped).
    image_list:         ``ood_data`` is a list of ``relative/path label`` lines, images under ``ood_root``
                        (else ``data_root``).
    folder:             ``ood_data`` is a folder; every image under it.
    """
    dataset = registry.canonical_dataset(dataset)
    sample_set = default_sample_set(dataset) if sample_set is None else canonical_sample_set(sample_set)
    entry = registry.sample_set_pool(sample_set)
    read = registry.resolve(entry.reader)
    if entry.layout == "embedded":
        pool = read(data_root, dataset)
    elif not ood_data:
        raise ValueError(f"--ood_data is required for --sample_set {sample_set}: {LAYOUT_FILES[entry.layout]} "
                         f"(it is never looked for in the working directory)")
    elif entry.layout == "list":
        root = ood_root or data_root
        if not root:
            raise ValueError(f"--ood_root (or --data) is required for --sample_set {sample_set}: the folder the "
                             "list's relative paths start from")
        pool = read(ood_data, root)
    else:
        pool = read(ood_data)
    pool.transform = transform
    return pool


class IdOodDataset(Dataset):
    """The COLT training set: all ID items, then the pool items chosen by the last sampling round.

    Items are ``(image, label, source_index, is_ood)``: ``source_index`` is the position in the ID set or
    in the pool, so per-sample scores stay keyed by ID position whatever the selection. With no pool
    (plain SimCLR) it is the ID set with ``is_ood`` False.
    """

    def __init__(self, id_set: Dataset, ood_pool: Dataset | None = None):
        self.id_set, self.ood_pool = id_set, ood_pool
        self.set_ood_indices(None)

    @property
    def n_id(self) -> int:
        return len(self.id_set)

    @property
    def ood_indices(self) -> np.ndarray:
        """The chosen pool positions (int64, read-only; in dataset order after the ID items)."""
        return self._ood_indices

    def set_ood_indices(self, indices) -> None:
        """Replace the chosen pool items (None or empty: ID only)."""
        if indices is None or len(indices) == 0:
            chosen = np.empty(0, np.int64)
        elif self.ood_pool is None:
            raise ValueError("no OOD pool to choose from")
        else:
            chosen = check_indices(np.asarray(indices), len(self.ood_pool), "OOD selection")
        chosen.flags.writeable = False
        self._ood_indices = chosen

    def __len__(self) -> int:
        return self.n_id + len(self._ood_indices)

    def __getitem__(self, i: int):
        n_id, i = self.n_id, int(i)
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} items")
        i %= len(self)
        if i < n_id:
            image, label, _ = self.id_set[i]
            return image, label, i, False
        j = int(self._ood_indices[i - n_id])
        image, label, _ = self.ood_pool[j]
        return image, label, j, True


def resolve_pool_file(path_or_name: str, pool: str, suffix: str) -> Path:
    """A pool's file: a path, or a bare name looked up in ``splits/<pool>/`` (``ImageNet_900_train`` ->
    ``splits/imagenet900/ImageNet_900_train.txt``)."""
    path = Path(path_or_name).expanduser()
    if path.exists():
        return path
    folder = registry.REPO_ROOT / "splits" / pool
    for candidate in (folder / path_or_name, folder / (path_or_name + suffix)):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{path_or_name!r} not found: it is not a path, nor a file in {folder}")


def build_inference_set(name: str, split: str | None, data_root: str | None, root: str | None = None,
                        flag: str = "--inference_dataset_split"):
    """Any dataset the framework reads, for feature inference: ``(dataset, identity)``.

    ID datasets (synthetic, cifar10, cifar100, imagenet100, places, with aliases) take ``split`` as their
    training split (``--trainSplit``). Pools: ``300K_random_images`` (``split`` = the .npy file),
    ``image_list`` and the MAK release's pool names ``imagenet-900`` / ``imagenet_places365_mix`` (``split``
    = a list of ``relative/path label`` lines under ``root`` or ``data_root``), ``folder`` (``split`` = the
    folder), ``synthetic_pool`` (the embedded pool). ``identity`` names what was read, with absolute paths.
    """
    from data.build import build_train_set, resolve_data_root, resolve_split
    entry = registry.find_pool(name)
    if entry is not None:
        read = registry.resolve(entry.reader)
        if entry.layout == "embedded":
            cache = resolve_data_root("synthetic", data_root)
            return read(data_root, "synthetic"), {"dataset": entry.name, "role": "pool", "split": None,
                                                  "source": str(Path(cache).expanduser().resolve())}
        if entry.layout == "list":
            if not split:
                raise ValueError(f"{flag} is required for {name}: its list of "
                                 f"'relative/path label' lines")
            image_root = root or data_root
            if not image_root:
                raise ValueError(f"--data (or --inference_dataset_root) is required for {name}: the image root of "
                                 f"its list")
            list_file = resolve_pool_file(split, entry.name, ".txt")
            return read(list_file, image_root), {"dataset": entry.name, "role": "pool",
                                                 "split": str(list_file.resolve()),
                                                 "source": str(Path(image_root).expanduser().resolve())}
        if not split:
            raise ValueError(f"{flag} is required for {entry.name}: the pool's "
                             f"{'folder' if entry.layout == 'folder' else '.npy file'}")
        path = Path(split).expanduser()
        return read(path, flag=flag), {"dataset": entry.name, "role": "pool", "split": str(path.resolve()),
                                       "source": str(path.resolve())}
    try:
        dataset_name = registry.canonical_dataset(name)
    except ValueError:
        raise ValueError(f"unknown --inference_dataset {name!r}: an ID dataset ({', '.join(registry.dataset_names())}) "
                         f"or a pool ({', '.join(sorted(s for p in registry.pools() for s in p.spellings()))})") from None
    dataset = build_train_set(dataset_name, data_root, split)
    split_path = resolve_split(split, dataset_name)
    return dataset, {"dataset": dataset_name, "role": "id",
                     "split": None if split_path is None else str(split_path.resolve()),
                     "source": str(resolve_data_root(dataset_name, data_root).expanduser().resolve())}


def build_additional_set(name: str, split: str, pool_data: str | None, data_root: str | None,
                         root: str | None = None):
    """``(pool, chosen positions)`` of the extra images chosen offline (``train_simclr.py --additional_*``).

    Image-list pools: ``split`` is the list of chosen lines itself (what sample_mak.py writes for them), so
    the pool is that list and every item is taken. Array and folder pools: ``pool_data`` is the pool
    (.npy file or folder; the embedded pool needs none) and ``split`` an index .npy into it.
    """
    from data.datasets import load_split_file
    entry = registry.find_pool(name)
    layout = entry.layout if entry else None
    if layout == "list":
        dataset, _ = build_inference_set(name, split, data_root, root)
        return dataset, np.arange(len(dataset), dtype=np.int64)
    if layout != "embedded" and not pool_data:
        raise ValueError(f"--additional_data is required for --additional_dataset {name}: the pool's .npy file "
                         f"or folder (the split holds indices into it)")
    pool, identity = build_inference_set(name, pool_data, data_root, root, flag="--additional_data")
    split_file = resolve_pool_file(split, identity["dataset"], ".npy")
    return pool, load_split_file(split_file, len(pool))
