"""One entry point from (dataset name, data root, split) to a dataset of uint8 images; the dataset's reader
(``data.registry``) does the reading."""
from __future__ import annotations

from pathlib import Path

from data import registry
from data.registry import REPO_ROOT, canonical_dataset, class_names  # noqa: F401  (the entry points' imports)

DATASETS = registry.dataset_names()


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
    found = registry.find_split(folder, path.name, dataset)
    if found is not None:
        return found
    hint = f" ({registry.make_splits_hint(dataset, path.name, 'ROOT', str(folder))})" if bare else ""
    searched = ", ".join(str(folder / sub) for sub in registry.dataset(dataset).published_subfolders)
    raise FileNotFoundError(f"split {split!r} not found: it is not a file, nor in {folder}"
                            f"{' or ' + searched if searched else ''}{hint}")


def resolve_data_root(dataset: str, data_root) -> Path:
    """``--data``, or the dataset's default location (synthetic only); otherwise a clear error. A folder
    that must exist (every dataset but synthetic, whose cache is made on first use) is checked here, so a
    wrong --data is reported as such, before any split is looked for."""
    made_on_use = registry.reader(dataset).default_root() is not None  # a cache generated on first use
    root = Path(data_root).expanduser() if data_root else registry.reader(dataset).default_root()
    if root is None:
        raise ValueError(f"--data is required for {dataset}: the folder that holds the dataset")
    if root.exists() and not root.is_dir():
        raise ValueError(f"--data {root} is a file: it must name the folder that holds the "
                         f"{dataset + ' data cache' if made_on_use else dataset + ' data'}")
    if not made_on_use and not root.is_dir():
        raise FileNotFoundError(f"--data {root}: folder not found (it must hold the {dataset} data)")
    return root


def build_train_set(dataset: str, data_root: str | Path | None, split: str | None, transform=None):
    """The pre-training set: the long-tailed subset named by ``split`` of the dataset's training images.

    synthetic: its (already long-tailed) training set, optionally restricted by an index file.
    cifar10/cifar100: the official 50,000 training images restricted to a split file of indices.
    imagenet100/places: the image list ``split`` under ``data_root``.
    """
    entry = registry.dataset(dataset)
    root = resolve_data_root(entry.name, data_root)
    split_path = resolve_split(split, entry.name)
    return registry.resolve(entry.reader).train_set(entry, root, split_path, transform)


def build_test_set(dataset: str, data_root, test_split: str | None = None):
    """The balanced test set: synthetic's, CIFAR's official test images, or an ImageNet-100 / Places list."""
    entry = registry.dataset(dataset)
    return registry.resolve(entry.reader).test_set(entry, resolve_data_root(entry.name, data_root), test_split)


def build_eval_sets(dataset: str, data_root, train_split: str, val_split: str, test_split: str | None = None):
    """(probe train, validation, test) datasets of uint8 images for linear / few-shot probing.

    synthetic: named balanced splits of its training set (full, few, val) and its balanced test set.
    cifar10/cifar100: index files into the official training set (e.g. trainIdxList, valIdxList,
    split1_S_b) and the official test set. imagenet100/places: three image lists under ``data_root``.
    """
    entry = registry.dataset(dataset)
    return registry.resolve(entry.reader).eval_sets(entry, resolve_data_root(entry.name, data_root), train_split,
                                                    val_split, test_split)
