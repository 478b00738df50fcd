"""Pictures of a run: grids of images, tailness by class. PNGs written atomically."""
from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from utils.checkpoint import atomic_write  # noqa: E402


def save_figure(fig, path: str | Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    atomic_write(path, lambda f: f.write(buffer.getvalue()))


def save_image_grid(rows: list[np.ndarray], row_titles: list[str], path: str | Path, max_per_row: int = 8,
                    title: str | None = None) -> None:
    """One labelled row per entry of ``rows`` (uint8 arrays (n, H, W, 3); n may be 0)."""
    n_rows = max(len(rows), 1)
    fig, axes = plt.subplots(n_rows, max_per_row, figsize=(1.2 * max_per_row + 1.2, 1.25 * n_rows + 0.5),
                             squeeze=False)
    for r, (images, name) in enumerate(zip(rows, row_titles)):
        for c in range(max_per_row):
            ax = axes[r, c]
            ax.set_xticks([]), ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c < len(images):
                ax.imshow(images[c])
        axes[r, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=11)
    save_figure(fig, path)


def save_tailness_histogram(scores: np.ndarray, labels: np.ndarray | None, path: str | Path,
                            class_names=None, class_counts=None, title: str | None = None) -> None:
    """ID tailness scores, split by class when labels are known (classes ordered by their training count):
    overlaid step histograms up to 12 classes, per-class box plots beyond. NaN (never scored) is left out."""
    scores = np.asarray(scores, dtype=np.float64)
    scored = ~np.isnan(scores)
    note = f" ({(~scored).sum()} never scored)" if (~scored).any() else ""
    fig, ax = plt.subplots(figsize=(9, 4.5))
    if labels is None or not scored.any():
        ax.hist(scores[scored], bins=40, color="tab:blue")
    else:
        labels = np.asarray(labels)
        classes = np.unique(labels[scored & (labels >= 0)])
        if class_counts is not None:
            classes = sorted(classes, key=lambda c: -class_counts[c])
        name = lambda c: (class_names[c] if class_names is not None else f"class {c}") + \
            (f" (n={class_counts[c]})" if class_counts is not None else "")
        groups = [scores[scored & (labels == c)] for c in classes]
        if len(classes) <= 12:
            bins = np.histogram_bin_edges(scores[scored], bins=40)
            colours = plt.cm.viridis(np.linspace(0, 0.95, len(classes)))
            for c, values, colour in zip(classes, groups, colours):
                ax.hist(values, bins=bins, histtype="step", linewidth=1.5, color=colour, label=name(c),
                        density=True)
            ax.legend(fontsize=8, title="head to tail" if class_counts is not None else None, ncol=2)
            ax.set_ylabel("density")
        else:
            ax.boxplot(groups, showfliers=False)
            ax.set_xticks(range(1, len(classes) + 1, max(1, len(classes) // 20)))
            ax.set_xticklabels([str(c) for c in classes][::max(1, len(classes) // 20)], fontsize=7)
            ax.set_xlabel("class, head to tail" if class_counts is not None else "class")
    ax.set_xlabel(ax.get_xlabel() or "tailness score (EMA of top-k negative mass)")
    ax.set_title((title or "ID tailness") + note, fontsize=11)
    save_figure(fig, path)
