"""How a pool's items relate to the ID classes, for the pools that know it: each item of the synthetic pool was
drawn near one ID class (``ood_near_class`` c) or far from all (-1). Read by reports, round records and
sampling summaries only; training and the samplers never see it (the pool datasets are unlabelled).
Which pools have it is the registry's ``PoolEntry.relations``; for the others every function here returns None.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from data import registry


def _pool_relations(entry: registry.PoolEntry, data_root, dataset: str) -> np.ndarray | None:
    return registry.resolve(entry.relations)(data_root, dataset) if entry.relations else None


def colt_pool_near_class(sample_set: str | None, dataset: str, data_root: str | None) -> np.ndarray | None:
    """The metadata of a COLT pool (``--sample_set``; None: the dataset's default), read from where
    ``data.ood.build_ood_pool`` reads the pool."""
    from data.ood import default_sample_set
    dataset = registry.canonical_dataset(dataset)
    entry = registry.sample_set_pool(default_sample_set(dataset) if sample_set is None else sample_set)
    return _pool_relations(entry, data_root, dataset)


def named_pool_near_class(name: str | None, data_root: str | None) -> np.ndarray | None:
    """The metadata of a pool named as ``--inference_dataset`` / ``--additional_dataset`` are (its cache in
    ``data_root``, else the default), or None."""
    entry = registry.find_pool(name) if name else None
    # the pool is named beside its own data root here, as the ID dataset of its own registry entry
    return _pool_relations(entry, data_root, entry.sample_set or entry.name) if entry else None


def inference_class_counts(meta: dict) -> np.ndarray:
    """The ID training set's count per class, from the ``meta.json`` of its inference output."""
    from data.ood import build_inference_set
    dataset, _ = build_inference_set(meta["dataset"], meta["split"], meta["source"])
    return np.bincount(dataset.labels[dataset.labels >= 0])


def selection_relations(pool_meta: dict, train_meta: dict | None) -> tuple[np.ndarray, list[int], str] | None:
    """(each pool item's relation index, utils.picks.RELATIONS; the class counts that group the classes; where the
    counts came from) for an offline selection's pool, from the inference outputs' metadata, or None when the
    pool has no relation metadata. The classes are grouped by the training set's counts (without a training
    output, e.g. ``--sampling_method random``: the whole synthetic training set's)."""
    from utils.picks import item_relations
    near_class = named_pool_near_class(pool_meta["dataset"], pool_meta["source"])
    if near_class is None or len(near_class) != pool_meta["num_items"]:
        return None
    if train_meta is not None:
        counts, counted = inference_class_counts(train_meta), "the training set of the inference output"
    else:
        from data.synthetic import load_synthetic
        counts = np.bincount(load_synthetic(Path(pool_meta["source"]))["train_y"])
        counted = "the whole synthetic training set (no training-set output given)"
    return item_relations(near_class, counts), [int(c) for c in counts], counted


def relations_picks(found: tuple[np.ndarray, list[int], str], chosen: np.ndarray) -> dict:
    """``utils.picks.picks_summary`` of ``chosen`` over the relations ``selection_relations`` found, with the
    class counts used and where they came from."""
    from utils.picks import picks_summary
    relations, counts, counted = found
    return {**picks_summary(relations, chosen), "class_counts": counts, "class_counts_from": counted}


def selection_picks(pool_meta: dict, train_meta: dict | None, chosen: np.ndarray) -> dict | None:
    """``relations_picks`` of an offline selection (sample_mak.py), or None when the pool has no relation
    metadata (``selection_relations``)."""
    found = selection_relations(pool_meta, train_meta)
    return None if found is None else relations_picks(found, chosen)
