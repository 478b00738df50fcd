"""The report's picks section: what each pre-training run's sampler chose, by the chosen items' known relation to
the ID classes (near a tail / medium / head class, or far; utils/picks.py), against the pool's own shares,
and the COLT rounds' tailness ordering (Spearman of mean class tailness vs class count).

Each probe's results.json names its pre-training checkpoint; the checkpoint's folder is the run: a COLT run
holds ood_round<r>.npy (and .json), a MAK run names its extra images in args.json (--additional_split).
Only pools that know their items' relations (the synthetic pool) give rows; others are left out.
"""
from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from utils.checkpoint import atomic_write
from utils.picks import (RELATIONS, item_relations, mak_terms_markdown, mean_mak_terms, mean_picks, near_markdown,
                         picks_markdown, picks_summary, plot_picks)


def run_dir_of(result: dict) -> Path | None:
    """The pre-training run a probe result came from (its checkpoint's folder), if it is still there."""
    checkpoint = result.get("checkpoint")
    if not checkpoint:
        return None
    path = Path(checkpoint).expanduser()
    return path.parent if (path.parent / "args.json").is_file() else None


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def run_selections(run_dir: Path, class_counts) -> list[dict]:
    """Every selection of one run with relation metadata: {"selection", "picks", "spearman", "epoch"}."""
    from data.relations import colt_pool_near_class, named_pool_near_class
    args = _read_json(run_dir / "args.json") or {}
    out = []
    if args.get("COLT"):
        near_class = colt_pool_near_class(args.get("sample_set"), args.get("dataset", "synthetic"), args.get("data"))
        scorer = args.get("ood_scorer", "clusters")
        rounds = sorted((int(m.group(1)), p) for p in run_dir.glob("ood_round*.npy")
                        if (m := re.fullmatch(r"ood_round(\d+)\.npy", p.name)))
        for r, path in rounds:
            record = _read_json(path.with_suffix(".json")) or {}
            picks = None
            if near_class is not None:
                chosen = np.load(path, allow_pickle=False)
                picks = picks_summary(item_relations(near_class, class_counts), chosen)
            out.append({"selection": f"COLT round {r} ({scorer})", "picks": picks, "epoch": record.get("epoch"),
                        "spearman": record.get("tailness_count_spearman")})
    elif args.get("additional_dataset") and args.get("additional_split"):
        from data.datasets import load_split_file
        from data.ood import resolve_pool_file
        near_class = named_pool_near_class(args["additional_dataset"], args.get("data"))
        if near_class is not None:
            split = resolve_pool_file(args["additional_split"], "synthetic_pool", ".npy")
            chosen = load_split_file(split, len(near_class))
            summary = _read_json(split.with_name(split.name[:-4] + ".json")) if split.name.endswith(".npy") else None
            method = ((summary or {}).get("settings") or {}).get("sampling_method", "offline")
            out.append({"selection": f"offline selection ({method})", "spearman": None, "epoch": None,
                        "picks": picks_summary(item_relations(near_class, class_counts), chosen),
                        "mak_terms": (summary or {}).get("mak_terms")})
    return out


def load_selections(paths) -> list[tuple[str, dict]]:
    """The rows of the selections given to --selections: sample_mak.py summaries (<name>.json with "picks");
    raises ValueError for anything else."""
    rows = []
    for path in map(Path, paths):
        summary = _read_json(path)
        if not isinstance(summary, dict) or "picks" not in summary:
            raise ValueError(f"--selections {path}: not a sample_mak.py summary with picks (written for a pool "
                             f"that knows how its items relate to the classes, e.g. the synthetic pool)")
        method = (summary.get("settings") or {}).get("sampling_method", "offline")
        rows.append((f"{path.stem} (sample_mak.py --sampling_method {method}, no re-training)", summary["picks"]))
    return rows


def collect(results: list[dict]) -> tuple[dict, dict, dict]:
    """(picks, spearman, terms): per (method, selection) the list of picks summaries over runs (seeds / splits),
    the (epoch, Spearman) of each run's COLT rounds, and the (mak_terms, picks) of each run's MAK selection
    (sample_mak.py's summary beside the split)."""
    picks, spearman, terms = defaultdict(list), defaultdict(list), defaultdict(list)
    seen = set()
    for result in results:
        run_dir = run_dir_of(result)
        if run_dir is None or run_dir.resolve() in seen or not result.get("class_counts"):
            continue
        seen.add(run_dir.resolve())
        try:
            items = run_selections(run_dir, result["class_counts"])
        except (FileNotFoundError, ValueError):  # a run whose pool or split moved: no picks to show
            continue
        for item in items:
            key = (result["method"], item["selection"])
            if item["picks"] is not None:
                picks[key].append(item["picks"])
            if item["spearman"] is not None:
                spearman[key].append((item["epoch"], item["spearman"]))
            if item.get("mak_terms") and item["picks"] is not None:
                terms[key].append((item["mak_terms"], item["picks"]))
    return picks, spearman, terms


def mak_terms_rows(terms: dict) -> list[tuple[str, dict, dict]]:
    """The rows of ``utils.picks.mak_terms_markdown`` for collect()'s terms: one per (method, selection),
    averaged over its runs."""
    return [(f"{method}: {selection}", mean_mak_terms([t for t, _ in values]), mean_picks([p for _, p in values]))
            for (method, selection), values in terms.items()]


MAK_TERMS_TEXT = ("Each relation's mean z-scored ECLE (high: tail-like, hard to tell from the other pool items "
                  "under augmentation) and distance to the ID set's k-means centroids (high: far), and MAK's score "
                  "a*z(ECLE) - (1-a)*z(distance); then the share of each relation among the top-score candidates "
                  "(--core_sample_ratio x the budget) and among the items K-center chose from them (farthest "
                  "first from the ID set and the items already chosen).")


NEAR_TEXT = ("The chosen near items alone, far ones set aside: their share of all chosen items, then the share "
             "of them near a tail / medium / head class against that class group's share of the pool's near items "
             "(computed from the mean shares; a uniformly random choice among the near items has x1.00). A sampler "
             "that prefers the tail classes' neighbourhood to the head classes' shows a near-tail ratio above 1 "
             "here, whatever its far share.")


def spearman_markdown(spearman: dict) -> str:
    if not spearman:
        return ""
    lines = ["| run | round | epoch | Spearman (mean class tailness vs class count) | runs |", "|---|---|---|---|---|"]
    for (method, selection), values in spearman.items():
        rho = np.array([v for _, v in values], dtype=float)
        epochs = sorted({e for e, _ in values if e is not None})
        cell = f"{rho.mean():.2f}" if len(rho) == 1 else f"{rho.mean():.2f} ± {rho.std():.2f} " \
            f"({', '.join(f'{v:.2f}' for v in rho)})"
        lines.append(f"| {method} | {selection.split(' (')[0].replace('COLT ', '')} | "
                     f"{'/'.join(map(str, epochs))} | {cell} | {len(rho)} |")
    return "\n".join(lines) + "\n"


def write_picks(results: list[dict], out: Path, extra_rows=()) -> str:
    """picks.md (tables) and picks.png (bars) in ``out`` when any selection has relation metadata (the runs'
    and ``extra_rows`` of load_selections), and the Markdown (empty when there is nothing to show)."""
    picks, spearman, terms = collect(results)
    rows = [(f"{method}: {selection}", mean_picks(summaries)) for (method, selection), summaries in picks.items()]
    extra = defaultdict(list)  # the same kind of selection from several runs (seeds) is one row
    for label, summary in extra_rows:
        extra[label].append(summary)
    rows += [(label, mean_picks(summaries)) for label, summaries in extra.items()]
    text = ""
    if rows:
        text += ("## What the samplers picked\n\nShare of the chosen pool items drawn near a tail / medium / head "
                 "class (the probes' Few / Medium / Many groups) or far from every class; in brackets the ratio "
                 "to the pool's own share (a uniformly random selection has the pool's shares in expectation, "
                 "x1.00).\n\n" + picks_markdown(rows)
                 + "\n## Which classes the near picks are near\n\n" + NEAR_TEXT + "\n\n" + near_markdown(rows))
        plot_picks(rows, out / "picks.png", title="What each sampler picked, by relation to the ID classes "
                                                  "(top: the pool's own shares)")
    if spearman:
        text += ("\n## Tailness ordering per COLT round\n\nSpearman's rank correlation between each class's mean "
                 "tailness and its training count, before the round (positive: head classes score higher, the "
                 "direction COLT relies on).\n\n" + spearman_markdown(spearman))
    if terms:
        text += "\n## What drove MAK's choice\n\n" + MAK_TERMS_TEXT + "\n\n" + mak_terms_markdown(mak_terms_rows(terms))
    if text:
        atomic_write(out / "picks.md", lambda f: f.write(text.encode()))
    return text


__all__ = ["MAK_TERMS_TEXT", "NEAR_TEXT", "RELATIONS", "collect", "load_selections", "mak_terms_rows", "run_dir_of",
           "run_selections", "write_picks"]
