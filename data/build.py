"""One entry point from (dataset name, data root, split) to a dataset of uint8 images."""
from __future__ import annotations

from pathlib import Path

from data.datasets import ArrayImageDataset, ImageListDataset, load_split_file

REPO_ROOT = Path(__file__).resolve().parents[1]
DATASETS = ("synthetic", "cifar10", "cifar100", "imagenet100", "places")
# Names used by the original releases and their scripts.
ALIASES = {"cifar": "cifar10", "cifar-10": "cifar10", "cifar-100": "cifar100", "imagenet": "imagenet100",
           "imagenet-100": "imagenet100", "places365": "places", "places-lt": "places"}
SPLIT_SUFFIX = {"synthetic": ".npy", "cifar10": ".npy", "cifar100": ".npy", "imagenet100": ".txt", "places": ".txt"}


def canonical_dataset(name: str) -> str:
    name = ALIASES.get(name.lower(), name.lower())
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)} "
                         f"(aliases: {', '.join(sorted(ALIASES))})")
    return name


def resolve_split(split: str | None, dataset: str) -> Path | None:
    """A split is a path, or a bare name looked up in ``splits/<dataset>/`` of this repository
    (``split1_D_i`` -> ``splits/cifar10/split1_D_i.npy``). Nothing else is searched."""
    if split is None:
        return None
    path = Path(split).expanduser()
    if path.is_file():
        return path
    folder = REPO_ROOT / "splits" / dataset
    for candidate in (folder / split, folder / (split + SPLIT_SUFFIX[dataset])):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"split {split!r} not found: it is not a file, nor in {folder} "
                            f"(make CIFAR splits with: python splits/make_splits.py --dataset {dataset} "
                            f"--data ROOT --out {folder})")


def default_data_root(dataset: str) -> Path | None:
    if dataset == "synthetic":
        from data.synthetic import default_synthetic_root
        return default_synthetic_root()
    return None


def build_train_set(dataset: str, data_root: str | Path | None, split: str | None, transform=None):
    """The pre-training set: the long-tailed subset named by ``split`` of the dataset's training images.

    synthetic: its (already long-tailed) training set, optionally restricted by an index file.
    cifar10/cifar100: the official 50,000 training images restricted to a split file of indices.
    imagenet100/places: the image list ``split`` under ``data_root``.
    """
    dataset = canonical_dataset(dataset)
    root = Path(data_root).expanduser() if data_root else default_data_root(dataset)
    if root is None:
        raise ValueError(f"--data is required for {dataset}: the folder that holds the dataset")
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
