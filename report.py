"""The papers' tables from probe results: rows = methods, columns = All / Many / Medium / Few / Std for
full-shot and few-shot, each the mean ± std over splits.

    python report.py RUN_DIR_OR_RESULTS_JSON [...] --out DIR

Inputs are results.json files or folders searched for them. A result's method is its "method" entry (the
pre-training run's name unless the probe was given --method), its shot its "shot" entry. Prints the
Markdown table and writes DIR/table.md, DIR/table.csv, DIR/per_class.png and DIR/groups.png; where the
pre-training runs drew from a pool that knows how its items relate to the classes (the synthetic pool), also
DIR/picks.md and DIR/picks.png: what each sampler picked, and the tailness ordering per COLT round
(report_picks.py).
"""
from __future__ import annotations

import csv
import io
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run from a checkout without installing

import numpy as np  # noqa: E402

from report_picks import load_selections, write_picks  # noqa: E402
from utils.checkpoint import atomic_write  # noqa: E402
from utils.cli import ArgumentParser, HelpFormatter  # noqa: E402
from utils.errors import message  # noqa: E402
from utils.run_dir import KINDS, folder_kind  # noqa: E402

METRICS = ("all", "many", "medium", "few", "std")
SHOTS = ("full", "few")
# Rows in the COLT paper's Table 1 order (each framework, then with COLT), MAK after SimCLR's; other names
# (e.g. a launcher's --save_dir) follow alphabetically.
TABLE_ORDER = ("SimCLR", "SimCLR+COLT", "SimCLR+MAK", "SDCLR", "SDCLR+COLT", "BCL", "BCL+COLT", "BCL-I",
               "BCL-I+COLT", "BCL-D", "BCL-D+COLT")


def row_order(method: str) -> tuple:
    return (TABLE_ORDER.index(method), "") if method in TABLE_ORDER else (len(TABLE_ORDER), method)


def check_out(out: Path) -> None:
    """--out: a folder (or a place for one) that is not an output of another kind."""
    existing = next(p for p in (out, *out.parents) if p.exists())
    if not existing.is_dir():
        raise ValueError(f"--out {out}: {existing} is a file: --out must name a folder")
    kind = folder_kind(out) if out.is_dir() else None
    if kind is not None:
        raise ValueError(f"--out {out} holds {KINDS[kind]}: give the report a folder of its own")


def collect_results(paths) -> list[dict]:
    """Every results.json named or found (recursively) under the given paths, with its path recorded."""
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            # hidden folders hold probes moved aside by --overwrite, not results to report
            files += sorted(f for f in path.rglob("results.json")
                            if not any(part.startswith(".") for part in f.relative_to(path).parts))
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
    results = []
    for file in files:
        try:
            result = json.loads(file.read_text())
        except OSError as e:
            raise ValueError(f"cannot read {file}: {message(e).split(': ', 1)[-1]}") from e
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{file}: not a results.json ({e})") from e
        check_result(result, file)
        result.setdefault("method", file.parent.parent.name)
        result.setdefault("shot", "full")
        result["path"] = str(file)
        results.append(result)
    check_one_dataset(results)
    return results


def check_one_dataset(results: list[dict]) -> None:
    """A table averages methods over splits: results of datasets with different classes cannot share one."""
    by_classes = {}
    for result in results:
        classes = len(result["per_class"]) if result.get("per_class") is not None else None
        key = (result.get("dataset"), classes)
        by_classes.setdefault(key, result["path"])
    datasets = {d for d, _ in by_classes if d is not None}
    sizes = {c for _, c in by_classes if c is not None}
    if len(datasets) > 1 or len(sizes) > 1:
        listing = "; ".join(f"{d or 'dataset not recorded'}, {c if c is not None else '?'} classes: {path}"
                            for (d, c), path in sorted(by_classes.items(), key=str))
        raise ValueError(f"the results are of different datasets ({listing}): report each dataset's results "
                         f"separately (one folder or list of results.json per dataset)")


def check_result(result, file) -> None:
    """A results.json is an object whose metrics are numbers (or null) and whose per-class lists match."""
    if not isinstance(result, dict):
        raise ValueError(f"{file}: not a results.json (expected an object of metrics, got {type(result).__name__})")
    if not any(metric in result for metric in METRICS):
        raise ValueError(f"{file}: not a results.json (none of the metrics {', '.join(METRICS)})")
    for metric in METRICS:
        value = result.get(metric)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ValueError(f"{file}: {metric!r} must be a number, got {value!r}")
        if value is not None and not math.isfinite(value):
            raise ValueError(f"{file}: {metric!r} is {value}, not a finite number: the probe that wrote it failed; "
                             f"run it again")
    for key in ("method", "shot"):
        if key in result and not isinstance(result[key], str):
            raise ValueError(f"{file}: {key!r} must be a string, got {result[key]!r}")
    if result.get("shot", "full") not in SHOTS:
        raise ValueError(f"{file}: 'shot' must be one of {', '.join(SHOTS)}, got {result['shot']!r}")
    per_class, counts = result.get("per_class"), result.get("class_counts")
    if per_class is not None or counts is not None:
        if not isinstance(per_class, list) or not isinstance(counts, list) or len(per_class) != len(counts):
            raise ValueError(f"{file}: 'per_class' and 'class_counts' must be lists of the same length")
        if not per_class:
            raise ValueError(f"{file}: 'per_class' is empty")
        for name, values, allow_none in (("per_class", per_class, True), ("class_counts", counts, False)):
            bad = [v for v in values if not ((v is None and allow_none) or (
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)))]
            if bad:
                raise ValueError(f"{file}: {name!r} must hold finite numbers{' or null' if allow_none else ''}, "
                                 f"found {bad[0]!r}")


def build_table(results: list[dict]) -> list[dict]:
    """One row per method, in TABLE_ORDER then by name: {method, (shot, metric): (mean, population std, n)}."""
    cells = defaultdict(list)
    methods = []
    for result in results:
        if result["method"] not in methods:
            methods.append(result["method"])
        for metric in METRICS:
            if result.get(metric) is not None:
                cells[result["method"], result["shot"], metric].append(float(result[metric]))
    rows = []
    for method in sorted(methods, key=row_order):
        row = {"method": method}
        for shot in SHOTS:
            for metric in METRICS:
                values = cells.get((method, shot, metric), [])
                row[shot, metric] = (float(np.mean(values)), float(np.std(values)), len(values)) if values else None
        rows.append(row)
    return rows


def format_cell(cell) -> str:
    if cell is None:
        return "–"
    mean, std, n = cell
    return f"{mean:.2f}" if n == 1 else f"{mean:.2f} ± {std:.2f}"


def format_markdown(rows: list[dict]) -> str:
    shots = [s for s in SHOTS if any(row[s, m] is not None for row in rows for m in METRICS)]
    header = ["Method"] + [f"{name} {m.capitalize() if m != 'std' else 'Std'}" for name in
                           (("Full-shot", "Few-shot")[SHOTS.index(s)] for s in shots) for m in METRICS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join([row["method"]] + [format_cell(row[s, m]) for s in shots for m in METRICS])
                     + " |")
    return "\n".join(lines) + "\n"


def table_csv(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["method", "shot", "metric", "mean", "std", "n"])
    for row in rows:
        for shot in SHOTS:
            for metric in METRICS:
                if row[shot, metric] is not None:
                    mean, std, n = row[shot, metric]
                    writer.writerow([row["method"], shot, metric, f"{mean:.4f}", f"{std:.4f}", n])
    return out.getvalue()


def by_rank(values, counts) -> np.ndarray:
    """A run's per-class values reordered from its most to its least frequent pre-training class.

    Each CIFAR split ranks the classes in its own order, so runs are averaged by rank, not by class id."""
    order = np.argsort(-np.asarray(counts, dtype=float), kind="stable")
    return np.array([np.nan if v is None else v for v in values], dtype=float)[order]


def method_colours(methods: list[str]) -> dict[str, tuple]:
    """One colour per method, the same in every picture of a report (methods in table order)."""
    from utils.plots import plt
    palette = plt.get_cmap("tab10").colors
    return {method: palette[i % len(palette)] for i, method in enumerate(methods)}


def splits_phrase(n: int) -> str:
    return "one split" if n == 1 else f"mean over {n} splits"


def group_spans(result: dict) -> list[tuple[str, int, int]]:
    """(group, first rank, last rank) of Many / Medium / Few in a result's frequency-rank order (0 = head)."""
    order = np.argsort(-np.asarray(result["class_counts"], dtype=float), kind="stable")
    rank_of = np.empty(len(order), dtype=int)
    rank_of[order] = np.arange(len(order))
    spans = []
    for name in ("many", "medium", "few"):
        ranks = rank_of[np.asarray(result.get("groups", {}).get(name, []), dtype=int)]
        if len(ranks):
            spans.append((name, int(ranks.min()), int(ranks.max())))
    return spans


def plot_per_class(results: list[dict], path: Path, method_order: list[str] | None = None) -> None:
    """Per-class accuracy (full-shot, mean over splits at each frequency rank) of every method, head to
    tail, one bar per method at each rank, with the pre-training count (mean over splits) on a second axis
    and the Many / Medium / Few ranks shaded."""
    from utils.plots import plt, save_figure
    full = [r for r in results if r["shot"] == "full" and r.get("per_class")] or \
        [r for r in results if r.get("per_class")]
    methods = list(dict.fromkeys(r["method"] for r in full))
    if method_order:
        methods = [m for m in method_order if m in methods]
    if not methods:
        return
    colours = method_colours(method_order or methods)
    counts = np.mean([by_rank(r["class_counts"], r["class_counts"]) for r in full], axis=0)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.06 * len(counts) * max(2, len(methods)) + 4), 4.4))
    width = 0.8 / len(methods)
    x = np.arange(len(counts))
    for name, first, last in group_spans(full[0]):
        ax.axvspan(first - 0.5, last + 0.5, color={"many": "0.93", "medium": "0.86", "few": "0.79"}[name], zorder=0)
        ax.text((first + last) / 2, 1.01, name.capitalize(), transform=ax.get_xaxis_transform(), ha="center",
                va="bottom", fontsize=8)
    n_splits = []
    for i, method in enumerate(methods):
        mine = [r for r in full if r["method"] == method]
        n_splits.append(len(mine))
        per_rank = np.nanmean([by_rank(r["per_class"], r["class_counts"]) for r in mine], axis=0)
        ax.bar(x + (i - (len(methods) - 1) / 2) * width, per_rank, width, color=colours[method], zorder=2,
               label=f"{method} ({splits_phrase(len(mine))})")
    step = max(1, len(counts) // 20)
    ax.set_xticks(x[::step])
    ax.set_xticklabels([str(r + 1) for r in x[::step]], fontsize=8)
    ax.set_xlim(-0.5, len(counts) - 0.5)
    ax.set_xlabel("class frequency rank in the pre-training split (1 = head); shading: Many / Medium / Few")
    ax.set_ylabel("test accuracy (%)")
    twin = ax.twinx()
    twin.plot(x, counts, color="black", linewidth=1.2, marker=".", label="pre-training images per class")
    twin.set_ylabel("images in the pre-training split")
    twin.set_ylim(0, counts.max() * 1.05 if len(counts) and counts.max() > 0 else 1)
    handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    labels = ax.get_legend_handles_labels()[1] + twin.get_legend_handles_labels()[1]
    # below the axes, so it never covers a bar
    ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=min(len(labels), 3),
              fontsize=8, frameon=False)
    n = set(n_splits)
    over = splits_phrase(n.pop()) if len(n) == 1 else "mean over each method's splits"
    ax.set_title(f"Per-class accuracy against class frequency (full-shot, {over})", fontsize=10, pad=16)
    save_figure(fig, path)


def plot_groups(rows: list[dict], path: Path) -> None:
    """Many / Medium / Few accuracy per method; error bars (std over splits) only where there are several."""
    from utils.plots import plt, save_figure
    shots = [s for s in SHOTS if any(row[s, "all"] is not None for row in rows)]
    colours = method_colours([row["method"] for row in rows])
    fig, axes = plt.subplots(1, len(shots), figsize=(5.5 * len(shots), 4.4), squeeze=False)
    groups = ("many", "medium", "few")
    split_counts = set()
    for ax, shot in zip(axes[0], shots):
        width = 0.8 / len(rows)
        for i, row in enumerate(rows):
            cells = [row[shot, g] for g in groups]
            means = [c[0] if c else np.nan for c in cells]
            n = max((c[2] for c in cells if c), default=0)
            split_counts.add(n)
            stds = [c[1] if c else 0 for c in cells] if n > 1 else None
            ax.bar(np.arange(3) + (i - (len(rows) - 1) / 2) * width, means, width, yerr=stds, capsize=3,
                   color=colours[row["method"]], label=f"{row['method']} ({splits_phrase(n)})")
        ax.set_xticks(range(3))
        ax.set_xticklabels(["Many", "Medium", "Few"])
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"{'Full' if shot == 'full' else 'Few'}-shot probing", fontsize=10)
        # one entry a line: a wider legend runs into the next panel's
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=1, fontsize=8, frameon=False)
    several = sorted(n for n in split_counts if n > 1)
    note = ("error bars: std over splits" if several else "one split per method: no error bars")
    fig.suptitle(f"Accuracy by class group (Many / Medium / Few by pre-training class count); {note}", fontsize=10)
    save_figure(fig, path)


def main(argv=None) -> int:
    p = ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("inputs", nargs="+", help="results.json files or folders that hold them")
    p.add_argument("--out", required=True, help="folder for table.md, table.csv, per_class.png, groups.png")
    p.add_argument("--selections", nargs="*", default=[],
                   help="more selections for picks.md: sample_mak.py summaries (<name>.json), e.g. a random one")
    args = p.parse_args(argv)
    try:
        check_out(Path(args.out))
        results = collect_results(args.inputs)
        if not results:
            raise ValueError(f"no results.json under {', '.join(args.inputs)}")
        selections = load_selections(args.selections)
        rows = build_table(results)
        markdown = format_markdown(rows)
        out = Path(args.out)
        atomic_write(out / "table.md", lambda f: f.write(markdown.encode()))
        atomic_write(out / "table.csv", lambda f: f.write(table_csv(rows).encode()))
        plot_per_class(results, out / "per_class.png", method_order=[row["method"] for row in rows])
        plot_groups(rows, out / "groups.png")
        picks = write_picks(results, out, selections)
    except (OSError, ValueError) as e:
        print(f"error: {message(e)}", file=sys.stderr)
        return 2
    print(markdown + (f"\n{picks}" if picks else "") + f"\n{len(results)} results; table and plots in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
