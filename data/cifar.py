"""Read and write CIFAR-10 / CIFAR-100 in the official python-pickle release format.

The official folders are ``cifar-10-batches-py/`` (``data_batch_1`` .. ``data_batch_5``, ``test_batch``,
``batches.meta``) and ``cifar-100-python/`` (``train``, ``test``, ``meta``). Each data file is a Python-2 pickle
of a dict: ``b'data'`` is a uint8 (N, 3072) array whose rows hold the red, green and blue 32x32 planes one after
another; the labels are a list of ints under ``b'labels'`` (CIFAR-10) or ``b'fine_labels'`` / ``b'coarse_labels'``
(CIFAR-100).

The files are unpickled with a restricted unpickler that can only rebuild numpy arrays and bytes, so a tampered
file cannot run code. Nothing is downloaded and no md5 is checked: the caller points at the data.
"""
from __future__ import annotations

import codecs
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

try:
    from numpy._core.multiarray import _reconstruct as _numpy_reconstruct
except ImportError:  # numpy < 2 has no numpy._core
    from numpy.core.multiarray import _reconstruct as _numpy_reconstruct

IMAGE_SHAPE = (32, 32, 3)
ROW_BYTES = 32 * 32 * 3

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

CIFAR100_CLASSES = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
    "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
    "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
    "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard",
    "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain",
    "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
    "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket",
    "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider",
    "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger",
    "tractor", "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
)

CIFAR100_SUPERCLASSES = (
    "aquatic_mammals", "fish", "flowers", "food_containers", "fruit_and_vegetables",
    "household_electrical_devices", "household_furniture", "insects", "large_carnivores",
    "large_man-made_outdoor_things", "large_natural_outdoor_scenes", "large_omnivores_and_herbivores",
    "medium_mammals", "non-insect_invertebrates", "people", "reptiles", "small_mammals", "trees",
    "vehicles_1", "vehicles_2",
)


@dataclass(frozen=True)
class CifarLayout:
    """Where one dataset's files live in its official folder and which key holds the labels."""

    folder: str
    train_files: tuple[str, ...]
    test_file: str
    meta_file: str
    label_key: str
    num_classes: int


LAYOUTS = {
    "cifar10": CifarLayout(folder="cifar-10-batches-py",
                           train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
                           test_file="test_batch", meta_file="batches.meta", label_key="labels", num_classes=10),
    "cifar100": CifarLayout(folder="cifar-100-python", train_files=("train",), test_file="test",
                            meta_file="meta", label_key="fine_labels", num_classes=100),
}


def _layout(dataset: str) -> CifarLayout:
    if dataset not in LAYOUTS:
        raise ValueError(f"unknown dataset {dataset!r}: expected one of {sorted(LAYOUTS)}")
    return LAYOUTS[dataset]


# ---------------------------------------------------------------------------------------------------------------
# Reading


def _latin1_encode(text: str, encoding: str) -> bytes:
    """Stand-in for ``_codecs.encode``: protocol-2 pickles written by Python 3 store bytes as a latin-1 string."""
    if encoding != "latin1" or not isinstance(text, str):
        raise pickle.UnpicklingError(f"disallowed _codecs.encode call with encoding {encoding!r}")
    return codecs.encode(text, "latin1")


# Everything the official (Python-2) files and protocol-2 rewrites of them need: numpy array/dtype
# reconstruction and bytes. Both numpy module names map to the same function so no deprecated shim is imported.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
    ("__builtin__", "bytes"): bytes,
    ("builtins", "bytes"): bytes,
}


class _CifarUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals in ``_ALLOWED_GLOBALS`` and refuses anything else."""

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"disallowed global {module}.{name}") from None


def _load_pickle(path: Path) -> dict:
    """Unpickle one official file into a dict with str keys."""
    if not path.is_file():
        raise FileNotFoundError(f"CIFAR file not found: {path}")
    try:
        with open(path, "rb") as f:
            content = _CifarUnpickler(f, encoding="bytes").load()
    except Exception as e:  # any failure inside the unpickler means the file is not what we expect
        raise ValueError(f"{path}: not a CIFAR python pickle ({type(e).__name__}: {e})") from e
    if not isinstance(content, dict):
        raise ValueError(f"{path}: expected a pickled dict, got {type(content).__name__}")
    return {key.decode("latin1") if isinstance(key, bytes) else key: value for key, value in content.items()}


def _images_from_rows(rows: object, path: Path) -> np.ndarray:
    """(N, 3072) uint8 rows of R, G, B planes -> C-contiguous (N, 32, 32, 3) HWC images."""
    if not isinstance(rows, np.ndarray) or rows.dtype != np.uint8 or rows.ndim != 2 or rows.shape[1] != ROW_BYTES:
        found = f"{rows.dtype} {rows.shape}" if isinstance(rows, np.ndarray) else type(rows).__name__
        raise ValueError(f"{path}: expected 'data' to be a uint8 array of shape (N, {ROW_BYTES}), got {found}")
    return np.ascontiguousarray(rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))


def _labels_from_list(values: object, count: int, num_classes: int, path: Path) -> np.ndarray:
    """A list (or 1-D array) of ``count`` ints in [0, num_classes) -> int64 array."""
    labels = np.asarray(values)
    if labels.ndim != 1 or labels.size != count or (count and not np.issubdtype(labels.dtype, np.integer)):
        raise ValueError(f"{path}: expected {count} integer labels, got shape {labels.shape} dtype {labels.dtype}")
    labels = labels.astype(np.int64)
    if count and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"{path}: labels outside [0, {num_classes}) (min {labels.min()}, max {labels.max()})")
    return labels


def _read_file(path: Path, layout: CifarLayout) -> tuple[np.ndarray, np.ndarray]:
    content = _load_pickle(path)
    for key in ("data", layout.label_key):
        if key not in content:
            raise ValueError(f"{path}: missing key {key!r} (found {sorted(map(str, content))})")
    images = _images_from_rows(content["data"], path)
    labels = _labels_from_list(content[layout.label_key], len(images), layout.num_classes, path)
    return images, labels


def dataset_folder(root: str | Path, dataset: str) -> Path:
    """The official folder of ``dataset``: ``root/<folder>`` if it exists, else ``root`` itself if so named."""
    layout = _layout(dataset)
    root = Path(root)
    if (root / layout.folder).is_dir():
        return root / layout.folder
    if root.name == layout.folder and root.is_dir():
        return root
    raise FileNotFoundError(f"{dataset} folder not found: expected {root / layout.folder} "
                            f"(or pass that folder itself)")


def read_cifar(root: str | Path, dataset: str, train: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Read the official training (``train=True``) or test split.

    Returns images as C-contiguous uint8 (N, 32, 32, 3) RGB and labels as int64 (N,) (CIFAR-100: fine labels),
    in official order (CIFAR-10 training: batches 1 to 5). ``root`` is the folder holding
    ``cifar-10-batches-py/`` / ``cifar-100-python/`` or that folder itself.
    """
    layout = _layout(dataset)
    folder = dataset_folder(root, dataset)
    names = layout.train_files if train else (layout.test_file,)
    paths = [folder / name for name in names]
    for path in paths:  # report a missing file before spending time on the others
        if not path.is_file():
            raise FileNotFoundError(f"CIFAR file not found: {path}")
    parts = [_read_file(path, layout) for path in paths]
    images = np.concatenate([images for images, _ in parts])
    labels = np.concatenate([labels for _, labels in parts])
    return images, labels


def read_cifar_labels(root: str | Path, dataset: str, train: bool = True) -> np.ndarray:
    """Only the int64 labels of a split (the images are read and checked, then dropped)."""
    return read_cifar(root, dataset, train)[1]


# ---------------------------------------------------------------------------------------------------------------
# Writing


def _check_arrays(images: np.ndarray, labels: np.ndarray, num_classes: int, what: str) -> np.ndarray:
    """Validate arrays to write; returns the labels as int64."""
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != IMAGE_SHAPE:
        raise ValueError(f"{what} images: expected uint8 (N, 32, 32, 3), got {images.dtype} {images.shape}")
    if labels.shape != (len(images),) or (labels.size and not np.issubdtype(labels.dtype, np.integer)):
        raise ValueError(f"{what} labels: expected {len(images)} integer labels, got {labels.dtype} {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"{what} labels: expected values in [0, {num_classes}), "
                         f"got min {labels.min()} max {labels.max()}")
    return labels.astype(np.int64)


def _rows_from_images(images: np.ndarray) -> np.ndarray:
    """(N, 32, 32, 3) HWC -> (N, 3072) rows of R, G, B planes, as stored in the official files."""
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2).reshape(len(images), ROW_BYTES))


def _filenames(labels: np.ndarray, class_names: tuple[str, ...], first: int) -> list[bytes]:
    return [f"{class_names[label]}_s_{first + i:06d}.png".encode() for i, label in enumerate(labels)]


def _dump(content: dict, path: Path) -> None:
    # Protocol 2 so that Python 2 can read the files too, like the official release.
    with open(path, "wb") as f:
        pickle.dump(content, f, protocol=2)


def _write_cifar10(folder: Path, train: tuple, test: tuple) -> None:
    batches = list(zip(np.array_split(train[0], 5), np.array_split(train[1], 5)))
    first = 0
    for number, (images, labels) in enumerate(batches, start=1):
        _dump({b"batch_label": f"training batch {number} of 5".encode(), b"labels": labels.tolist(),
               b"data": _rows_from_images(images), b"filenames": _filenames(labels, CIFAR10_CLASSES, first)},
              folder / f"data_batch_{number}")
        first += len(labels)
    _dump({b"batch_label": b"testing batch 1 of 1", b"labels": test[1].tolist(),
           b"data": _rows_from_images(test[0]), b"filenames": _filenames(test[1], CIFAR10_CLASSES, 0)},
          folder / "test_batch")
    _dump({b"num_cases_per_batch": len(batches[0][1]), b"num_vis": ROW_BYTES,
           b"label_names": [name.encode() for name in CIFAR10_CLASSES]}, folder / "batches.meta")


def _write_cifar100(folder: Path, splits: dict[str, tuple]) -> None:
    for name, (images, fine, coarse) in splits.items():
        _dump({b"batch_label": f"{name}ing batch 1 of 1".encode(), b"fine_labels": fine.tolist(),
               b"coarse_labels": coarse.tolist(), b"data": _rows_from_images(images),
               b"filenames": _filenames(fine, CIFAR100_CLASSES, 0)}, folder / name)
    _dump({b"fine_label_names": [name.encode() for name in CIFAR100_CLASSES],
           b"coarse_label_names": [name.encode() for name in CIFAR100_SUPERCLASSES]}, folder / "meta")


def write_cifar(root: str | Path, dataset: str, train_images: np.ndarray, train_labels: np.ndarray,
                test_images: np.ndarray, test_labels: np.ndarray, *,
                train_coarse_labels: np.ndarray | None = None,
                test_coarse_labels: np.ndarray | None = None) -> Path:
    """Write arrays as an official-format folder ``root/cifar-10-batches-py`` or ``root/cifar-100-python``.

    Images are uint8 (N, 32, 32, 3) RGB, labels ints (CIFAR-100: fine labels). CIFAR-10 training data is split
    in order into 5 batches of (nearly) equal size. CIFAR-100 coarse labels default to ``fine // 5``: a
    placeholder grouping for test fixtures, not the official superclass map. Refuses to write into an existing
    folder so a real dataset is never overwritten. Returns the folder written.
    """
    layout = _layout(dataset)
    train_labels = _check_arrays(train_images, train_labels, layout.num_classes, "train")
    test_labels = _check_arrays(test_images, test_labels, layout.num_classes, "test")
    if dataset == "cifar10" and (train_coarse_labels is not None or test_coarse_labels is not None):
        raise ValueError("coarse labels exist only for cifar100")
    folder = Path(root) / layout.folder
    if folder.exists():
        raise FileExistsError(f"{folder} already exists: write_cifar only creates new folders")
    folder.mkdir(parents=True)
    if dataset == "cifar10":
        _write_cifar10(folder, (np.asarray(train_images), train_labels), (np.asarray(test_images), test_labels))
    else:
        train_coarse = train_labels // 5 if train_coarse_labels is None else train_coarse_labels
        test_coarse = test_labels // 5 if test_coarse_labels is None else test_coarse_labels
        _write_cifar100(folder, {
            "train": (np.asarray(train_images), train_labels,
                      _check_arrays(train_images, train_coarse, 20, "train coarse")),
            "test": (np.asarray(test_images), test_labels,
                     _check_arrays(test_images, test_coarse, 20, "test coarse")),
        })
    return folder
