"""One entry point from (dataset name, data root, split) to a dataset of uint8 images."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from data.datasets import ArrayImageDataset, ImageListDataset, load_split_file

REPO_ROOT = Path(__file__).resolve().parents[1]
DATASETS = ("synthetic", "cifar10", "cifar100", "imagenet100", "places")
# Names used by the original releases and their scripts.
ALIASES = {"cifar": "cifar10", "cifar-10": "cifar10", "cifar-100": "cifar100", "imagenet": "imagenet100",
           "imagenet-100": "imagenet100", "places365": "places", "places-lt": "places"}
SPLIT_SUFFIX = {"synthetic": ".npy", "cifar10": ".npy", "cifar100": ".npy", "imagenet100": ".txt", "places": ".txt"}
# Subfolders of the published ``split/`` folder (COLT release) that hold each dataset's files: the probe lists,
# then the long-tailed subsets. A split root is searched in these as well as directly.
PUBLISHED_SUBFOLDERS = {"cifar10": ("cifar10", "cifar10_imbSub_with_subsets"),
                        "cifar100": ("cifar100", "cifar100_imbSub_with_subsets")}


# What a missing split of each dataset is and where it comes from.
SPLIT_HINTS = {
    "synthetic": "a synthetic split is an index .npy file into its training set; leave --trainSplit out to "
                 "use the whole long-tailed set, and the probes' splits are named full, few and val",
    "cifar10": "make the CIFAR-10 splits with: python splits/make_splits.py --dataset cifar10 --data ROOT "
               "--out {folder}",
    "cifar100": "make the CIFAR-100 splits with: python splits/make_splits.py --dataset cifar100 --data ROOT "
                "--out {folder}",
    "imagenet100": "ImageNet-100 splits are the released image lists ('relative/path label' lines): give the "
                   "list's path",
    "places": "Places splits are the released image lists ('relative/path label' lines): give the list's path",
}


def canonical_dataset(name: str) -> str:
    name = ALIASES.get(name.lower(), name.lower())
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)} "
                         f"(aliases: {', '.join(sorted(ALIASES))})")
    return name


def split_candidates(folder: Path, name: str, dataset: str) -> list[Path]:
    """Where a split ``name`` may lie under ``folder``: directly, or in one of the published ``split/``
    folder's subfolders for ``dataset``; each with and without the dataset's file suffix."""
    folders = [folder] + [folder / sub for sub in PUBLISHED_SUBFOLDERS.get(dataset, ())]
    return [f / n for f in folders for n in (name, name + SPLIT_SUFFIX[dataset])]


def resolve_split(split: str | None, dataset: str) -> Path | None:
    """A split is a file, a bare name looked up in ``splits/<dataset>/`` of this repository, or a name under
    a split root (``ROOT/split1_D_i``). A folder is searched directly and, for CIFAR, in the published
    layout's subfolders: ``/path/split/split1_D_i`` finds ``/path/split/cifar10_imbSub_with_subsets/
    split1_D_i.npy`` and ``/path/split/trainIdxList`` finds ``/path/split/cifar10/trainIdxList.npy``.
    Nothing else is searched."""
    if split is None:
        return None
    path = Path(split).expanduser()
    if path.is_file():
        return path
    bare = len(path.parts) == 1
    folder = REPO_ROOT / "splits" / dataset if bare else path.parent
    for candidate in split_candidates(folder, path.name, dataset):
        if candidate.is_file():
            return candidate
    hint = f" ({SPLIT_HINTS[dataset].format(folder=folder)})" if bare else ""
    searched = ", ".join(str(folder / sub) for sub in PUBLISHED_SUBFOLDERS.get(dataset, ()))
    raise FileNotFoundError(f"split {split!r} not found: it is not a file, nor in {folder}"
                            f"{' or ' + searched if searched else ''}{hint}")


def class_names(dataset: str) -> tuple[str, ...] | None:
    """Class names by label where the project knows them without reading data (synthetic, CIFAR-10)."""
    dataset = canonical_dataset(dataset)
    if dataset == "synthetic":
        from data.synthetic import CLASS_NAMES
        return tuple(CLASS_NAMES)
    if dataset == "cifar10":
        from data.cifar import CIFAR10_CLASSES
        return tuple(CIFAR10_CLASSES)
    return None


def default_data_root(dataset: str) -> Path | None:
    if dataset == "synthetic":
        from data.synthetic import default_synthetic_root
        return default_synthetic_root()
    return None


def resolve_data_root(dataset: str, data_root) -> Path:
    """``--data``, or the dataset's default location (synthetic only); otherwise a clear error. A folder
    that must exist (every dataset but synthetic, whose cache is made on first use) is checked here, so a
    wrong --data is reported as such, before any split is looked for."""
    root = Path(data_root).expanduser() if data_root else default_data_root(dataset)
    if root is None:
        raise ValueError(f"--data is required for {dataset}: the folder that holds the dataset")
    if root.exists() and not root.is_dir():
        raise ValueError(f"--data {root} is a file: it must name the folder that holds the "
                         f"{'synthetic data cache' if dataset == 'synthetic' else dataset + ' data'}")
    if dataset != "synthetic" and not root.is_dir():
        raise FileNotFoundError(f"--data {root}: folder not found (it must hold the {dataset} data)")
    return root


def build_train_set(dataset: str, data_root: str | Path | None, split: str | None, transform=None):
    """The pre-training set: the long-tailed subset named by ``split`` of the dataset's training images.

    synthetic: its (already long-tailed) training set, optionally restricted by an index file.
    cifar10/cifar100: the official 50,000 training images restricted to a split file of indices.
    imagenet100/places: the image list ``split`` under ``data_root``.
    """
    dataset = canonical_dataset(dataset)
    root = resolve_data_root(dataset, data_root)
    split_path = resolve_split(split, dataset)
    if dataset == "synthetic":
        from data.synthetic import load_synthetic
        arrays = load_synthetic(root)
        images, labels = arrays["train_x"], arrays["train_y"]
    elif dataset in ("cifar10", "cifar100"):
        from data.cifar import read_cifar
        images, labels = read_cifar(root, dataset, train=True)
    else:
        if split_path is None:
            raise ValueError(f"--trainSplit is required for {dataset}: a list of 'relative/path label' lines")
        return ImageListDataset(root, split_path, transform=transform)
    indices = None if split_path is None else load_split_file(split_path, len(images))
    return ArrayImageDataset(images, labels, indices, transform=transform)


# Balanced probe splits of the synthetic training set, per class: "full" the first 20 images, "few" the
# first 2 of those, "val" the next 5 (the tail class has 25). Positions follow the set's fixed order.
SYNTHETIC_PROBE_SPLITS = {"full": (0, 20), "few": (0, 2), "val": (20, 25)}


def synthetic_probe_split(labels: np.ndarray, name: str) -> np.ndarray:
    if name not in SYNTHETIC_PROBE_SPLITS:
        raise ValueError(f"synthetic probe split must be one of {', '.join(SYNTHETIC_PROBE_SPLITS)}, got {name!r}")
    lo, hi = SYNTHETIC_PROBE_SPLITS[name]
    return np.concatenate([np.flatnonzero(labels == c)[lo:hi] for c in np.unique(labels)])


def build_test_set(dataset: str, data_root, test_split: str | None = None):
    """The balanced test set: synthetic's, CIFAR's official test images, or an ImageNet-100 / Places list."""
    dataset = canonical_dataset(dataset)
    root = resolve_data_root(dataset, data_root)
    if dataset == "synthetic":
        from data.synthetic import load_synthetic
        arrays = load_synthetic(root)
        return ArrayImageDataset(arrays["test_x"], arrays["test_y"])
    if dataset in ("cifar10", "cifar100"):
        from data.cifar import read_cifar
        return ArrayImageDataset(*read_cifar(root, dataset, train=False))
    if test_split is None:
        raise ValueError(f"--testSplit is required for {dataset}: the list of test images")
    return ImageListDataset(root, resolve_split(test_split, dataset))


def build_eval_sets(dataset: str, data_root, train_split: str, val_split: str, test_split: str | None = None):
    """(probe train, validation, test) datasets of uint8 images for linear / few-shot probing.

    synthetic: named balanced splits of its training set (full, few, val) and its balanced test set.
    cifar10/cifar100: index files into the official training set (e.g. trainIdxList, valIdxList,
    split1_S_b) and the official test set. imagenet100/places: three image lists under ``data_root``.
    """
    dataset = canonical_dataset(dataset)
    if dataset == "synthetic":
        from data.synthetic import load_synthetic
        arrays = load_synthetic(resolve_data_root(dataset, data_root))
        x, y = arrays["train_x"], arrays["train_y"]
        return (ArrayImageDataset(x, y, synthetic_probe_split(y, train_split)),
                ArrayImageDataset(x, y, synthetic_probe_split(y, val_split)),
                ArrayImageDataset(arrays["test_x"], arrays["test_y"]))
    test_set = build_test_set(dataset, data_root, test_split)
    if dataset in ("cifar10", "cifar100"):
        from data.cifar import read_cifar
        x, y = read_cifar(resolve_data_root(dataset, data_root), dataset, train=True)
        subset = lambda split: ArrayImageDataset(x, y, load_split_file(resolve_split(split, dataset), len(x)))
        return subset(train_split), subset(val_split), test_set
    root = resolve_data_root(dataset, data_root)
    lists = [resolve_split(s, dataset) for s in (train_split, val_split)]
    return (*(ImageListDataset(root, path) for path in lists), test_set)
