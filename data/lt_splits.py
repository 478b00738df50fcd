"""The long-tailed CIFAR split protocol of COLT (Bai et al., ICLR 2023), as index arrays into the official
50,000 training images.

Protocol, per dataset (numbers in ``PROTOCOLS``):

* hold out ``val_per_class`` random images of each class as the validation list; the rest of each class is the
  pool (``pool_per_class`` images: 4,500 for CIFAR-10, 450 for CIFAR-100);
* the full-shot probe list (``trainIdxList``) is ``probe_per_class`` random images of each class's pool: the whole
  pool for CIFAR-10 (4,500, so 45,000), 400 of 450 for CIFAR-100 (40,000; the other 5,000 are in neither list);
* for each split K = 1..5, rank the classes in a fresh random order and shuffle each class's pool once;
  then ``D_i`` (imbalanced) takes the first ``long_tail_counts(pool_per_class, C)[rank]`` images of each class,
  ``D_b`` (balanced, same total size up to rounding) the first ``balanced_per_class`` and ``S_b`` (few-shot)
  the first ``fewshot_per_class``. All three are prefixes of the same shuffled pools, so ``S_b`` lies inside
  both ``D_i`` and ``D_b``. The splits are drawn from the whole pool, not from the probe list (as published).

Array names are the file stems of the published releases (``split1_D_i``, ``trainIdxList``; CIFAR-100 adds a
``cifar100_`` prefix). Pure numpy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SUBSET_NAMES = ("D_i", "D_b", "S_b")


def long_tail_counts(n_max: int, num_classes: int, imbalance: float = 0.01) -> list[int]:
    """Images per class by rank r: ``floor(n_max * imbalance ** (r / (num_classes - 1)))``.

    The head class keeps ``n_max``, the tail class ``n_max * imbalance``, with exponential decay in between.
    """
    if n_max < 1 or num_classes < 2 or not 0 < imbalance <= 1:
        raise ValueError(f"expected n_max >= 1, num_classes >= 2 and 0 < imbalance <= 1, "
                         f"got {n_max}, {num_classes}, {imbalance}")
    return [math.floor(n_max * imbalance ** (rank / (num_classes - 1))) for rank in range(num_classes)]


@dataclass(frozen=True)
class SplitProtocol:
    """Sizes of one dataset's protocol (per class) and the prefix of its file names."""

    num_classes: int
    val_per_class: int
    pool_per_class: int
    balanced_per_class: int
    fewshot_per_class: int
    name_prefix: str
    probe_per_class: int
    imbalance: float = 0.01

    @property
    def per_class(self) -> int:
        """Training images per class in the official set (validation + pool)."""
        return self.val_per_class + self.pool_per_class

    @property
    def imbalanced_counts(self) -> list[int]:
        """``D_i`` images per class, by rank (head first)."""
        return long_tail_counts(self.pool_per_class, self.num_classes, self.imbalance)


# The sizes of the published split files.
PROTOCOLS = {
    "cifar10": SplitProtocol(num_classes=10, val_per_class=500, pool_per_class=4500, balanced_per_class=1116,
                             fewshot_per_class=45, name_prefix="", probe_per_class=4500),
    "cifar100": SplitProtocol(num_classes=100, val_per_class=50, pool_per_class=450, balanced_per_class=97,
                              fewshot_per_class=4, name_prefix="cifar100_", probe_per_class=400),
}


def _check_protocol_sizes() -> None:
    """The balanced size is D_i's mean class size and few-shot is 1% of the pool: check the table says so."""
    for dataset, protocol in PROTOCOLS.items():
        balanced = sum(protocol.imbalanced_counts) // protocol.num_classes
        fewshot = protocol.pool_per_class // 100
        if not 0 < protocol.probe_per_class <= protocol.pool_per_class:
            raise AssertionError(f"{dataset}: probe_per_class {protocol.probe_per_class} not in "
                                 f"1..{protocol.pool_per_class}")
        if (balanced, fewshot) != (protocol.balanced_per_class, protocol.fewshot_per_class):
            raise AssertionError(f"{dataset}: derived balanced/few-shot sizes {balanced}/{fewshot} differ from "
                                 f"{protocol.balanced_per_class}/{protocol.fewshot_per_class}")


_check_protocol_sizes()


def get_protocol(dataset: str) -> SplitProtocol:
    if dataset not in PROTOCOLS:
        raise ValueError(f"unknown dataset {dataset!r}: expected one of {sorted(PROTOCOLS)}")
    return PROTOCOLS[dataset]


def split_names(dataset: str, num_splits: int = 5) -> list[str]:
    """Names of the arrays ``make_cifar_splits`` returns, in its order (also the ``.npy`` file stems)."""
    prefix = get_protocol(dataset).name_prefix
    names = [f"{prefix}trainIdxList", f"{prefix}valIdxList"]
    for k in range(1, num_splits + 1):
        names += [f"{prefix}split{k}_{subset}" for subset in SUBSET_NAMES]
    return names


def _check_labels(labels: np.ndarray, protocol: SplitProtocol) -> np.ndarray:
    """The labels must be the official training labels' shape: exactly ``per_class`` of each class."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"expected a 1-D integer label array, got shape {labels.shape} dtype {labels.dtype}")
    if labels.size == 0 or labels.min() < 0:
        found = "no labels" if labels.size == 0 else f"negative labels (min {labels.min()})"
    else:
        counts = np.bincount(labels, minlength=protocol.num_classes)
        if len(counts) == protocol.num_classes and np.all(counts == protocol.per_class):
            return labels
        found = f"{len(counts)} classes with {counts.min()}-{counts.max()} labels each"
    raise ValueError(f"the labels do not have the expected per-class counts: expected {protocol.per_class} "
                     f"of each of {protocol.num_classes} classes, got {found} ({labels.size} labels)")


def _shuffled(indices: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(indices).astype(np.int64)


def _hold_out_validation(labels: np.ndarray, protocol: SplitProtocol,
                         rng: np.random.Generator) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per class (in class order): a random validation part and the remaining pool."""
    val_parts, pools = [], []
    for cls in range(protocol.num_classes):
        members = rng.permutation(np.flatnonzero(labels == cls))
        val_parts.append(members[:protocol.val_per_class])
        pools.append(np.sort(members[protocol.val_per_class:]))
    return val_parts, pools


def _probe_parts(pools: list[np.ndarray], protocol: SplitProtocol,
                 rng: np.random.Generator) -> list[np.ndarray]:
    """Per class, the images of the full-shot probe list: a random ``probe_per_class`` of the pool.

    When that is the whole pool (CIFAR-10) no random draw is made, so those arrays stay as they were.
    """
    if protocol.probe_per_class == protocol.pool_per_class:
        return pools
    return [np.sort(rng.permutation(pool)[:protocol.probe_per_class]) for pool in pools]


def _one_split(pools: list[np.ndarray], protocol: SplitProtocol, rng: np.random.Generator,
               number: int) -> dict[str, np.ndarray]:
    """D_i, D_b and S_b of split ``number``: prefixes of each class's pool, shuffled once for this split."""
    rank_to_class = rng.permutation(protocol.num_classes)
    shuffled_pools = [rng.permutation(pool) for pool in pools]
    pools_by_rank = [shuffled_pools[cls] for cls in rank_to_class]
    sizes = {
        "D_i": protocol.imbalanced_counts,
        "D_b": [protocol.balanced_per_class] * protocol.num_classes,
        "S_b": [protocol.fewshot_per_class] * protocol.num_classes,
    }
    return {
        f"{protocol.name_prefix}split{number}_{subset}":
            _shuffled(np.concatenate([pool[:n] for pool, n in zip(pools_by_rank, sizes[subset])]), rng)
        for subset in SUBSET_NAMES
    }


def make_cifar_splits(labels: np.ndarray, dataset: str, seed: int = 0,
                      num_splits: int = 5) -> dict[str, np.ndarray]:
    """All index arrays of the protocol for the official training ``labels`` (50,000, in official order).

    Returns int64 arrays keyed by ``split_names(dataset, num_splits)``: the full-shot probe list
    (``trainIdxList``: ``probe_per_class`` images of each class's pool; the whole pool for CIFAR-10), the
    validation list (``valIdxList``) and ``split{K}_{D_i,D_b,S_b}`` for K = 1..num_splits. Each array is in a
    random order (not grouped by class), like the published files. One generator seeded with ``seed`` drives
    everything, so the same inputs always give the same arrays.
    """
    protocol = get_protocol(dataset)
    if num_splits < 1:
        raise ValueError(f"num_splits must be at least 1, got {num_splits}")
    labels = _check_labels(labels, protocol)
    rng = np.random.default_rng(seed)
    val_parts, pools = _hold_out_validation(labels, protocol, rng)
    arrays = {
        f"{protocol.name_prefix}trainIdxList": _shuffled(np.concatenate(_probe_parts(pools, protocol, rng)), rng),
        f"{protocol.name_prefix}valIdxList": _shuffled(np.concatenate(val_parts), rng),
    }
    for number in range(1, num_splits + 1):
        arrays.update(_one_split(pools, protocol, rng, number))
    return arrays


def describe_split(indices: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Images per class (int64, length ``num_classes``) in the subset ``labels[indices]``."""
    indices = np.asarray(indices)
    if indices.ndim != 1 or (indices.size and not np.issubdtype(indices.dtype, np.integer)):
        raise ValueError(f"expected a 1-D integer index array, got shape {indices.shape} dtype {indices.dtype}")
    counts = np.bincount(np.asarray(labels)[indices], minlength=num_classes)
    if len(counts) != num_classes:
        raise ValueError(f"labels go up to {len(counts) - 1}, beyond num_classes={num_classes}")
    return counts.astype(np.int64)


def balanced_fraction(labels: np.ndarray, fraction: float = 0.01, seed: int = 0) -> np.ndarray:
    """Positions of a balanced few-shot subset: the same number of items from every class, namely
    max(1, floor(fraction * smallest class size)), drawn at random (seeded). For the 1% lists of
    ImageNet-100 and Places, which the original releases lack; returned in ascending order."""
    labels = np.asarray(labels)
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    classes, counts = np.unique(labels, return_counts=True)
    per_class = max(1, int(np.floor(fraction * counts.min())))
    rng = np.random.default_rng(seed)
    chosen = [rng.choice(np.flatnonzero(labels == c), size=per_class, replace=False) for c in classes]
    return np.sort(np.concatenate(chosen))
