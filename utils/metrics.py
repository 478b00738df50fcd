"""Balancedness metrics of the papers: per-class accuracy, Many / Medium / Few groups, and their Std."""
from __future__ import annotations

import numpy as np

# How a dataset groups its classes (its registry entry's group_rule, which callers pass as ``rule``).
GROUPS = ("many", "medium", "few")


def per_class_accuracy(y_true, y_pred, num_classes: int) -> np.ndarray:
    """Top-1 accuracy of each class in percent (nan for a class without test samples)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    total = np.bincount(y_true, minlength=num_classes).astype(np.float64)
    correct = np.bincount(y_true[y_true == y_pred], minlength=num_classes).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, 100 * correct / total, np.nan)


def class_groups(class_counts, rule: str) -> dict[str, np.ndarray]:
    """Class ids of the Many / Medium / Few groups.

    thirds (CIFAR, synthetic): classes sorted by count (ties by id); Few = the floor(C/3) rarest,
    Medium = the next floor(C/3), Many = the rest (4/3/3 for CIFAR-10, 34/33/33 for CIFAR-100).
    thresholds (ImageNet-100, Places): Many > 100 images, Medium 20..100, Few < 20.
    """
    counts = np.asarray(class_counts)
    if rule == "thirds":
        order = np.lexsort((np.arange(len(counts)), counts))  # ascending count, then id
        third = len(counts) // 3
        groups = {"few": order[:third], "medium": order[third:2 * third], "many": order[2 * third:]}
    elif rule == "thresholds":
        ids = np.arange(len(counts))
        groups = {"many": ids[counts > 100], "medium": ids[(counts >= 20) & (counts <= 100)], "few": ids[counts < 20]}
    else:
        raise ValueError(f"unknown grouping rule {rule!r}; expected 'thirds' or 'thresholds'")
    return {name: np.sort(groups[name]) for name in GROUPS}


def summarize(per_class: np.ndarray, groups: dict[str, np.ndarray]) -> dict:
    """All = mean per-class accuracy; each group's mean (None if empty); Std = population standard deviation
    of the group means, the papers' balancedness figure."""
    out = {"all": float(np.nanmean(per_class))}
    for name in GROUPS:
        values = per_class[groups[name]]
        out[name] = float(np.nanmean(values)) if len(values) and not np.isnan(values).all() else None
    present = [out[name] for name in GROUPS if out[name] is not None]
    out["std"] = float(np.std(present)) if present else None
    return out


def format_summary(results: dict) -> str:
    """``all 52.90 many 63.00 ...`` with two decimals; a group with no class (None in results.json) is n/a."""
    return " ".join(f"{k} {'n/a' if results.get(k) is None else f'{results[k]:.2f}'}"
                    for k in ("all", *GROUPS, "std"))


def evaluation_results(y_true, y_pred, class_counts, rule: str) -> dict:
    """Everything results.json holds about one evaluation; JSON-ready (nan written as null)."""
    counts = np.asarray(class_counts)
    num_classes = max(len(counts), int(np.max(y_true)) + 1)
    counts = np.pad(counts, (0, num_classes - len(counts)))
    per_class = per_class_accuracy(y_true, y_pred, num_classes)
    groups = class_groups(counts, rule)
    results = summarize(per_class, groups)
    results.update(per_class=[None if np.isnan(a) else float(a) for a in per_class],
                   class_counts=[int(c) for c in counts], groups={k: v.tolist() for k, v in groups.items()},
                   group_rule=rule, num_test=int(len(y_true)))
    return results
