"""Pictures of a run: grids of images, tailness by class. PNGs written atomically.

The Agg backend is selected here, before pyplot is imported: plots are files only, never windows, and
work on machines without a display.
"""
from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from utils.checkpoint import atomic_write  # noqa: E402

MAX_PANELS = 12  # up to this many classes: one histogram panel per class; beyond: one box per class


def save_figure(fig, path: str | Path, dpi: int = 100) -> None:
    """Render ``fig`` to PNG in memory, close it, then write the bytes atomically to ``path``."""
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)
    atomic_write(path, lambda f: f.write(buffer.getvalue()))


def save_image_grid(rows: list[np.ndarray], row_titles: list[str], path: str | Path, max_per_row: int = 8,
                    title: str | None = None) -> None:
    """One labelled row of images per entry of ``rows``; each a uint8 array (n, H, W, 3).

    ``n`` may be 0 (an empty row, still labelled) or less than ``max_per_row``; beyond ``max_per_row`` only
    the first ``max_per_row`` are drawn and the row's label says how many there were.
    """
    if len(rows) != len(row_titles):
        raise ValueError(f"{len(rows)} rows but {len(row_titles)} row titles")
    if max_per_row < 1:
        raise ValueError(f"max_per_row must be positive, got {max_per_row}")
    rows = [np.asarray(images) for images in rows]
    for r, images in enumerate(rows):
        if len(images) and (images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8):
            raise ValueError(f"row {r} ({row_titles[r]!r}): expected uint8 images (n, H, W, 3), got "
                             f"{images.shape} {images.dtype}")
    n_rows = max(len(rows), 1)
    title_height = 0.45 if title else 0.0  # inches above the images
    height = 1.1 * n_rows + title_height
    fig, axes = plt.subplots(n_rows, max_per_row, squeeze=False, figsize=(1.1 * max_per_row, height))
    fig.subplots_adjust(left=0.0, right=1.0, bottom=0.0, top=1.0 - title_height / height, wspace=0.06,
                        hspace=0.1)
    for ax in axes.flat:
        ax.set_xticks([]), ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
    for r, (images, name) in enumerate(zip(rows, row_titles)):
        for c, image in enumerate(images[:max_per_row]):
            axes[r, c].imshow(image, interpolation="nearest")
        label = str(name) + (f"\n(first {max_per_row} of {len(images)})" if len(images) > max_per_row else "")
        if len(images) == 0:
            label += "\n(none)"
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9, labelpad=6)
    if not rows:
        axes[0, 0].text(0.0, 0.5, "no images", fontsize=10, va="center")
    if title:
        fig.suptitle(title, fontsize=11, y=1.0 - 0.1 / height, va="top")
    save_figure(fig, path)


def save_tailness_histogram(scores: np.ndarray, labels: np.ndarray | None, path: str | Path,
                            class_names=None, class_counts=None, title: str | None = None) -> None:
    """The distribution of ID tailness scores; NaN (never scored) is left out, and the title says how many.

    With ``labels`` (classes >= 0; -1 = unknown, left out of the per-class view) the distribution is split by
    class, classes ordered by ``class_counts`` (indexed by class, e.g. the pre-training count) descending,
    i.e. head to tail, and labelled with their counts: one histogram panel per class (shared score axis,
    the overall distribution in grey behind each) up to 12 classes, a box per class beyond, with the count
    of each class drawn on a second axis. Without labels: one histogram. ``class_names`` indexed by class.
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    scored = np.isfinite(scores)
    n_missing = int((~scored).sum())
    heading = (title or "ID tailness") + f"\n{int(scored.sum())} scored"
    heading += f", {n_missing} never scored (NaN) left out" if n_missing else ""
    classes = np.empty(0, np.int64)
    if labels is not None:
        labels = np.asarray(labels).ravel()
        if len(labels) != len(scores):
            raise ValueError(f"{len(labels)} labels for {len(scores)} scores")
        classes = np.unique(labels[labels >= 0]).astype(np.int64)
    counts = None
    if class_counts is not None and len(classes):
        class_counts = np.asarray(class_counts)
        if classes.max() >= len(class_counts):
            raise ValueError(f"class_counts has {len(class_counts)} entries but labels go up to {classes.max()}")
        counts = class_counts[classes]
        classes = classes[np.argsort(-counts, kind="stable")]  # head to tail; ties by class index
        counts = class_counts[classes]
    if class_names is not None and len(classes) and classes.max() >= len(class_names):
        raise ValueError(f"{len(class_names)} class names but labels go up to {classes.max()}")
    name = (lambda c: str(class_names[c])) if class_names is not None else (lambda c: f"class {c}")
    values = scores[scored]
    bins = np.histogram_bin_edges(values, bins=40) if len(values) else np.linspace(0, 1, 41)

    if len(classes) == 0:
        fig, ax = plt.subplots(figsize=(8, 4))
        ax.hist(values, bins=bins, color="tab:blue")
        ax.set_ylabel("images")
        _no_scores_note(ax, values)
        ax.set_xlabel("tailness score")
        ax.set_title(heading, fontsize=11)
    elif len(classes) <= MAX_PANELS:
        fig = _class_panels(values, bins, scores, scored, labels, classes, counts, name, heading)
    else:
        fig = _class_boxes(scores, scored, labels, classes, counts, class_names, heading)
    save_figure(fig, path)


def _no_scores_note(ax, values: np.ndarray) -> None:
    if not len(values):
        ax.text(0.5, 0.5, "no scores yet", transform=ax.transAxes, ha="center", va="center", color="grey")


def _class_panels(values, bins, scores, scored, labels, classes, counts, name, heading):
    """Small multiples: one short histogram per class, stacked head to tail on a shared score axis."""
    k = len(classes)
    fig, axes = plt.subplots(k, 1, sharex=True, squeeze=False, figsize=(8, 0.75 * k + 1.3),
                             gridspec_kw={"hspace": 0.12})
    colours = plt.cm.viridis(np.linspace(0.0, 0.9, k))
    overall = np.histogram(values, bins=bins, density=True)[0] if len(values) else np.zeros(len(bins) - 1)
    for ax, c, colour, n in zip(axes[:, 0], classes, colours, counts if counts is not None else [None] * k):
        mine = scores[scored & (labels == c)]
        ax.stairs(overall, bins, fill=True, color="0.88", label="all classes")
        if len(mine):
            ax.hist(mine, bins=bins, density=True, color=colour, alpha=0.85)
            ax.axvline(np.median(mine), color="tab:red", linewidth=1.2)
        else:
            ax.text(0.5, 0.5, "none scored", transform=ax.transAxes, ha="center", va="center", fontsize=8,
                    color="grey")
        label = name(c) + (f"\nn={int(n)}" if n is not None else "") + f"\n{len(mine)} scored"
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8, labelpad=6)
        ax.yaxis.tick_right()  # the density scale; the left side carries the class label
        ax.yaxis.set_major_locator(plt.MaxNLocator(2))
        ax.tick_params(axis="y", labelsize=7)
        for side in ("top", "left"):
            ax.spines[side].set_visible(False)
    order = "head to tail, n = pre-training count; " if counts is not None else ""
    axes[0, 0].set_title(f"{heading}\n({order}grey: all classes, red line: class median;\n"
                         f"right axis: density, the fraction of the class's images per unit of score)", fontsize=10)
    axes[-1, 0].set_xlabel("tailness score")
    return fig


def _class_boxes(scores, scored, labels, classes, counts, class_names, heading):
    """One box per class (whiskers 5-95%), head to tail, with each class's count on a second axis."""
    k = len(classes)
    groups = [scores[scored & (labels == c)] for c in classes]
    x = np.arange(1, k + 1)
    fig, ax = plt.subplots(figsize=(min(max(8.0, 0.1 * k + 3), 24), 4.5))
    present = [i for i, g in enumerate(groups) if len(g)]
    if present:
        ax.boxplot([groups[i] for i in present], positions=x[present], widths=0.7, whis=(5, 95),
                   showfliers=False, patch_artist=True,
                   boxprops={"facecolor": "tab:blue", "alpha": 0.45, "linewidth": 0.6},
                   medianprops={"color": "black", "linewidth": 1.2},
                   whiskerprops={"linewidth": 0.6}, capprops={"linewidth": 0.6})
    else:
        _no_scores_note(ax, np.empty(0))
    step = max(1, int(np.ceil(k / 25)))
    ax.set_xticks(x[::step])
    names = [str(class_names[c]) if class_names is not None else str(c) for c in classes]
    ax.set_xticklabels(names[::step], fontsize=7, rotation=90 if class_names is not None else 0)
    ax.set_xlim(0.3, k + 0.7)
    ax.set_ylabel("tailness score")
    ax.set_xlabel("class" + (", ordered by pre-training count (head to tail)" if counts is not None else ""))
    ax.grid(axis="y", alpha=0.3)
    if counts is not None:
        twin = ax.twinx()
        twin.plot(x, counts, color="tab:red", linewidth=1.2, label="pre-training count")
        if counts.min() > 0 and counts.max() / counts.min() > 20:
            twin.set_yscale("log")
        twin.set_ylabel("pre-training count", color="tab:red")
        twin.tick_params(axis="y", colors="tab:red")
    ax.set_title(heading + "\n(boxes: 25-75%, whiskers: 5-95%, line: median)", fontsize=10)
    return fig
