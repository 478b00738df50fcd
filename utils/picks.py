"""What a sampler picked, by each pool item's known relation to the ID classes: drawn near a tail, medium or
head class, or far from every class.

Pure arithmetic on arrays: the callers pass the pool's relation metadata (the ID class each near item was
drawn from, -1 for far items; only pools that know it have it, e.g. the synthetic pool) and the ID classes'
counts. Tail / medium / head are the probes' Few / Medium / Many groups of ``utils.metrics.class_groups``.
A uniformly random selection has, in expectation, the pool's own shares; a sampler that prefers items near
the tail shows it as a near-tail share above the pool's (an enrichment above 1).
"""
from __future__ import annotations

import numpy as np

from utils.metrics import class_groups

RELATIONS = ("near tail", "near medium", "near head", "far")
NEAR_RELATIONS = RELATIONS[:-1]
_GROUP_OF_RELATION = ("few", "medium", "many")


def item_relations(near_class, class_counts, rule: str = "thirds") -> np.ndarray:
    """Each pool item's relation, an index into RELATIONS: 0-2 for an item drawn near a class of the Few /
    Medium / Many group (by ``class_counts``, the ID training split's count per class), 3 for far items
    (``near_class`` -1). A class the counts do not cover counts 0 images."""
    near_class = np.asarray(near_class, dtype=np.int64)
    counts = np.asarray(class_counts, dtype=np.int64)
    if near_class.size and near_class.max() >= len(counts):
        counts = np.pad(counts, (0, int(near_class.max()) + 1 - len(counts)))
    groups = class_groups(counts, rule)
    relation_of_class = np.empty(len(counts), dtype=np.int64)
    for relation, group in enumerate(_GROUP_OF_RELATION):
        relation_of_class[groups[group]] = relation
    out = np.full(near_class.shape, len(RELATIONS) - 1, dtype=np.int64)
    near = near_class >= 0
    out[near] = relation_of_class[near_class[near]]
    return out


def relation_shares(relations: np.ndarray, chosen=None) -> np.ndarray:
    """Share (0-1) of each relation among the chosen items (all items when ``chosen`` is None)."""
    picked = np.asarray(relations) if chosen is None else np.asarray(relations)[np.asarray(chosen, dtype=np.int64)]
    counts = np.bincount(picked, minlength=len(RELATIONS)).astype(np.float64)
    return counts / max(len(picked), 1)


def picks_summary(relations: np.ndarray, chosen) -> dict:
    """JSON-ready: the number chosen, and per relation the count chosen, the share chosen, the pool's share
    and their ratio (enrichment; None where the pool has no such item)."""
    chosen = np.asarray(chosen, dtype=np.int64)
    pool = relation_shares(relations)
    mine = relation_shares(relations, chosen)
    counts = np.bincount(np.asarray(relations)[chosen], minlength=len(RELATIONS))
    return {"chosen": int(len(chosen)), "pool_size": int(len(relations)),
            "relations": {name: {"count": int(counts[i]), "share": float(mine[i]), "pool_share": float(pool[i]),
                                 "enrichment": float(mine[i] / pool[i]) if pool[i] > 0 else None}
                          for i, name in enumerate(RELATIONS)}}


def relation_means(relations: np.ndarray, values) -> dict:
    """The mean of ``values`` (one per pool item) over each relation's items: {relation: mean, or None where
    the pool has no such item}."""
    relations, values = np.asarray(relations), np.asarray(values, dtype=np.float64)
    if relations.shape != values.shape:
        raise ValueError(f"{len(values)} values for {len(relations)} pool items")
    sums = np.bincount(relations, weights=values, minlength=len(RELATIONS))
    counts = np.bincount(relations, minlength=len(RELATIONS))
    return {name: float(sums[i] / counts[i]) if counts[i] else None for i, name in enumerate(RELATIONS)}


def mak_terms(relations: np.ndarray, zscore_ecle, zscore_distance, score, candidates) -> dict:
    """Why MAK chose what it chose, JSON-ready: per relation the mean of each term of its score (z(ECLE): high =
    tail-like; z(distance): high = far from the ID set's centroids; the score a*z(ECLE) - (1-a)*z(distance)),
    and ``picks_summary`` of the top-score candidates that K-center then chose from (None: no ECLE term, or no
    K-center step)."""
    return {"zscore_ecle": None if zscore_ecle is None else relation_means(relations, zscore_ecle),
            "zscore_distance": relation_means(relations, zscore_distance),
            "score": relation_means(relations, score),
            "candidates": None if candidates is None else picks_summary(relations, candidates)}


def mean_mak_terms(terms: list[dict]) -> dict:
    """Several ``mak_terms`` (e.g. over seeds) as one: each relation's means averaged, and the candidates'
    ``mean_picks``; "n" the number averaged."""
    out = {"n": len(terms)}
    for key in ("zscore_ecle", "zscore_distance", "score"):
        if any(t.get(key) is None for t in terms):
            out[key] = None
            continue
        out[key] = {name: (None if any(t[key][name] is None for t in terms)
                           else float(np.mean([t[key][name] for t in terms]))) for name in RELATIONS}
    candidates = [t.get("candidates") for t in terms]
    out["candidates"] = None if any(c is None for c in candidates) else mean_picks(candidates)
    return out


def row_label(label: str, summary: dict) -> str:
    """A table row's label, with " (mean of n)" when ``summary`` averages n > 1 runs."""
    return f"{label} (mean of {summary['n']})" if summary.get("n", 1) > 1 else label


def mak_terms_markdown(rows: list[tuple[str, dict, dict]]) -> str:
    """A Markdown table of (label, mak_terms or mean_mak_terms, picks of the final choice) rows: one line per
    relation with the score's terms, the candidates' share and the chosen share (ratio to the pool's share)."""
    lines = ["| selection | relation | mean z(ECLE) | mean z(distance) | mean score | top-score candidates | "
             "chosen (after K-center) |", "|---|---|---|---|---|---|---|"]

    def number(table, name):
        value = None if table is None else table[name]
        return "-" if value is None else f"{value:+.2f}"

    def share(summary, name):
        return "-" if summary is None else share_cell(summary["relations"][name])
    for label, terms, picks in rows:
        for name in RELATIONS:
            lines.append(f"| {row_label(label, terms)} | {name} | {number(terms['zscore_ecle'], name)} | "
                         f"{number(terms['zscore_distance'], name)} | {number(terms['score'], name)} | "
                         f"{share(terms['candidates'], name)} | {share(picks, name)} |")
    return "\n".join(lines) + "\n"


def near_shares(summary: dict) -> dict:
    """The chosen near items alone (far ones set aside), from a ``picks_summary`` or ``mean_picks``: under
    "near" the near items' share of all chosen against the pool's, and per near relation its share of the
    chosen near items against its share of the pool's near items (None: no near item chosen, or none in the
    pool). Tells which classes a sampler's near picks are near, whatever its far share."""
    cells = summary["relations"]
    chosen = sum(cells[n]["share"] for n in NEAR_RELATIONS)
    pool = sum(cells[n]["pool_share"] for n in NEAR_RELATIONS)

    def cell(share, pool_share):
        return {"share": share, "pool_share": pool_share,
                "enrichment": share / pool_share if share is not None and pool_share else None}
    out = {"near": cell(chosen, pool)}
    for name in NEAR_RELATIONS:
        out[name] = cell(cells[name]["share"] / chosen if chosen > 0 else None,
                         cells[name]["pool_share"] / pool if pool > 0 else None)
    return out


def near_markdown(rows: list[tuple[str, dict]]) -> str:
    """A Markdown table of ``near_shares`` for (label, picks_summary or mean_picks) rows, then the pool's own
    shares from the first row: the near items' share of all chosen, and each near relation's share of the
    chosen near items, with the ratio to the pool's in brackets."""
    if not rows:
        return ""
    columns = ("near",) + NEAR_RELATIONS
    lines = ["| selection | near items (of all chosen) | "
             + " | ".join(f"{n} (of the near ones)" for n in NEAR_RELATIONS) + " |", "|" + "---|" * (len(columns) + 1)]

    def share(c):
        return "-" if c["share"] is None else share_cell(c)
    for label, summary in rows:
        shares = near_shares(summary)
        lines.append(f"| {row_label(label, summary)} | " + " | ".join(share(shares[n]) for n in columns) + " |")
    pool = near_shares(rows[0][1])

    def pool_cell(c):
        return "-" if c["pool_share"] is None else f"{100 * c['pool_share']:.1f}%"
    lines.append("| pool (= random, in expectation) | " + " | ".join(pool_cell(pool[n]) for n in columns) + " |")
    return "\n".join(lines) + "\n"


def mean_picks(summaries: list[dict]) -> dict:
    """Several selections of one kind (e.g. one round over seeds) as one: each relation's mean share, its
    population std ("share_std") and the ratio of the mean share to the mean pool share; "n" selections."""
    if not summaries:
        raise ValueError("no selections to average")
    relations = {}
    for name in RELATIONS:
        shares = np.array([s["relations"][name]["share"] for s in summaries])
        pool = float(np.mean([s["relations"][name]["pool_share"] for s in summaries]))
        relations[name] = {"share": float(shares.mean()), "share_std": float(shares.std()), "pool_share": pool,
                           "enrichment": float(shares.mean() / pool) if pool > 0 else None}
    return {"n": len(summaries), "chosen": int(round(np.mean([s["chosen"] for s in summaries]))),
            "pool_size": int(round(np.mean([s["pool_size"] for s in summaries]))), "relations": relations}


def format_picks(summary: dict) -> str:
    """One log line: ``near tail 21.3% (pool 10.0%, x2.13), ...``."""
    parts = []
    for name in RELATIONS:
        cell = summary["relations"][name]
        ratio = "" if cell["enrichment"] is None else f", x{cell['enrichment']:.2f}"
        parts.append(f"{name} {100 * cell['share']:.1f}% (pool {100 * cell['pool_share']:.1f}%{ratio})")
    return f"{summary['chosen']} picks by relation to the ID classes: " + ", ".join(parts)


def share_cell(cell: dict, with_std: bool = False) -> str:
    """One relation's table cell: ``12.3%`` (``12.3 ± 4.5%`` with the std over selections averaged) and, in
    brackets, the ratio to the pool's share (``(x1.23)``; none where the pool has no such item)."""
    spread = f" ± {100 * cell['share_std']:.1f}" if with_std else ""
    ratio = "" if cell["enrichment"] is None else f" (x{cell['enrichment']:.2f})"
    return f"{100 * cell['share']:.1f}{spread}%{ratio}"


def picks_markdown(rows: list[tuple[str, dict]]) -> str:
    """A Markdown table, one row per (label, picks_summary or mean_picks), then the pool's own shares (what a
    uniformly random selection has in expectation) from the first row. Cells: share chosen (± std over the
    selections averaged) and, in brackets, its ratio to the pool's share."""
    if not rows:
        return ""
    header = "| selection | chosen | " + " | ".join(RELATIONS) + " |"
    lines = [header, "|" + "---|" * (len(RELATIONS) + 2)]
    for label, summary in rows:
        cells = []
        several = summary.get("n", 1) > 1
        for name in RELATIONS:
            cells.append(share_cell(summary["relations"][name], with_std=several))
        lines.append(f"| {row_label(label, summary)} | {summary['chosen']} | " + " | ".join(cells) + " |")
    pool = rows[0][1]
    lines.append(f"| pool (= random, in expectation) | {pool['pool_size']} | "
                 + " | ".join(f"{100 * pool['relations'][n]['pool_share']:.1f}%" for n in RELATIONS) + " |")
    return "\n".join(lines) + "\n"


def plot_picks(rows: list[tuple[str, dict]], path, title: str) -> None:
    """One horizontal bar per selection, split by relation (shares in %), the pool's own shares on top."""
    from utils.plots import plt, save_figure
    if not rows:
        return
    labels = ["pool (= random, in expectation)"] + [label for label, _ in rows]
    shares = np.array([[rows[0][1]["relations"][n]["pool_share"] for n in RELATIONS]]
                      + [[s["relations"][n]["share"] for n in RELATIONS] for _, s in rows]) * 100
    colours = ("#c0392b", "#e67e22", "#2e86c1", "#95a5a6")  # tail red, medium orange, head blue, far grey
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(labels) + 1.6))
    y = np.arange(len(labels))[::-1]
    left = np.zeros(len(labels))
    for i, name in enumerate(RELATIONS):
        ax.barh(y, shares[:, i], left=left, color=colours[i], label=name, height=0.7)
        for yy, x0, w in zip(y, left, shares[:, i]):
            if w >= 6:
                ax.text(x0 + w / 2, yy, f"{w:.0f}", ha="center", va="center", fontsize=7, color="white")
        left += shares[:, i]
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xlim(0, 100)
    ax.set_xlabel("share of the chosen pool items (%)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22 if len(labels) < 5 else -0.12), ncol=len(RELATIONS),
              fontsize=8, frameon=False)
    ax.set_title(title, fontsize=9)
    save_figure(fig, path)
