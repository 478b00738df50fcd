"""The papers' tables from probe results: rows = methods, columns = All / Many / Medium / Few / Std for
full-shot and few-shot, each the mean ± std over splits.

    python report.py RUN_DIR_OR_RESULTS_JSON [...] --out DIR

Inputs are results.json files or folders searched for them. A result's method is its "method" entry (the
pre-training run's name unless the probe was given --method), its shot its "shot" entry. Prints the
Markdown table and writes DIR/table.md, DIR/table.csv, DIR/per_class.png and DIR/groups.png.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run from a checkout without installing

import numpy as np  # noqa: E402

from utils.checkpoint import atomic_write  # noqa: E402

METRICS = ("all", "many", "medium", "few", "std")
SHOTS = ("full", "few")


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
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"{file}: not a results.json ({e})") from e
        check_result(result, file)
        result.setdefault("method", file.parent.parent.name)
        result.setdefault("shot", "full")
        result["path"] = str(file)
        results.append(result)
    return results


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
    for key in ("method", "shot"):
        if key in result and not isinstance(result[key], str):
            raise ValueError(f"{file}: {key!r} must be a string, got {result[key]!r}")
    if result.get("shot", "full") not in SHOTS:
        raise ValueError(f"{file}: 'shot' must be one of {', '.join(SHOTS)}, got {result['shot']!r}")
    per_class, counts = result.get("per_class"), result.get("class_counts")
    if per_class is not None or counts is not None:
        if not isinstance(per_class, list) or not isinstance(counts, list) or len(per_class) != len(counts):
            raise ValueError(f"{file}: 'per_class' and 'class_counts' must be lists of the same length")


def build_table(results: list[dict]) -> list[dict]:
    """One row per method, sorted by name: {method, (shot, metric): (mean, population std, n)}."""
    cells = defaultdict(list)
    methods = []
    for result in results:
        if result["method"] not in methods:
            methods.append(result["method"])
        for metric in METRICS:
            if result.get(metric) is not None:
                cells[result["method"], result["shot"], metric].append(float(result[metric]))
    rows = []
    for method in sorted(methods):
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


def plot_per_class(results: list[dict], path: Path, max_methods: int = 2) -> None:
    """Per-class accuracy (full-shot, mean over splits at each frequency rank) of up to two methods, head to
    tail, with the pre-training count (mean over splits) on a second axis."""
    from utils.plots import plt, save_figure
    full = [r for r in results if r["shot"] == "full" and r.get("per_class")] or \
        [r for r in results if r.get("per_class")]
    methods = list(dict.fromkeys(r["method"] for r in full))[:max_methods]
    if not methods:
        return
    counts = np.mean([by_rank(r["class_counts"], r["class_counts"]) for r in full], axis=0)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.12 * len(counts) + 4), 4))
    width = 0.8 / len(methods)
    x = np.arange(len(counts))
    for i, method in enumerate(methods):
        per_rank = np.nanmean([by_rank(r["per_class"], r["class_counts"]) for r in full if r["method"] == method],
                              axis=0)
        ax.bar(x + (i - (len(methods) - 1) / 2) * width, per_rank, width, label=method)
    step = max(1, len(counts) // 20)
    ax.set_xticks(x[::step])
    ax.set_xticklabels([str(r + 1) for r in x[::step]], fontsize=8)
    ax.set_xlabel("class frequency rank in the pre-training split (1 = head)")
    ax.set_ylabel("test accuracy (%)")
    ax.legend(loc="upper right", fontsize=8)
    twin = ax.twinx()
    twin.plot(x, counts, color="black", linewidth=1.2, marker=".", label="pre-training count")
    twin.set_ylabel("images in the pre-training split")
    ax.set_title("Per-class accuracy against class frequency (full-shot, mean over splits)", fontsize=10)
    save_figure(fig, path)


def plot_groups(rows: list[dict], path: Path) -> None:
    """Many / Medium / Few accuracy per method with the std over splits as error bars."""
    from utils.plots import plt, save_figure
    shots = [s for s in SHOTS if any(row[s, "all"] is not None for row in rows)]
    fig, axes = plt.subplots(1, len(shots), figsize=(5.5 * len(shots), 4), squeeze=False)
    groups = ("many", "medium", "few")
    for ax, shot in zip(axes[0], shots):
        width = 0.8 / len(rows)
        for i, row in enumerate(rows):
            cells = [row[shot, g] for g in groups]
            means = [c[0] if c else np.nan for c in cells]
            stds = [c[1] if c else 0 for c in cells]
            ax.bar(np.arange(3) + (i - (len(rows) - 1) / 2) * width, means, width, yerr=stds, capsize=3,
                   label=row["method"])
        ax.set_xticks(range(3))
        ax.set_xticklabels(["Many", "Medium", "Few"])
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"{'Full' if shot == 'full' else 'Few'}-shot probing", fontsize=10)
        ax.legend(fontsize=8)
    save_figure(fig, path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", help="results.json files or folders that hold them")
    p.add_argument("--out", required=True, help="folder for table.md, table.csv, per_class.png, groups.png")
    args = p.parse_args(argv)
    try:
        existing = next(p for p in (Path(args.out), *Path(args.out).parents) if p.exists())
        if not existing.is_dir():
            raise ValueError(f"--out {args.out}: {existing} is a file: --out must name a folder")
        results = collect_results(args.inputs)
        if not results:
            raise ValueError(f"no results.json under {', '.join(args.inputs)}")
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    rows = build_table(results)
    markdown = format_markdown(rows)
    out = Path(args.out)
    atomic_write(out / "table.md", lambda f: f.write(markdown.encode()))
    atomic_write(out / "table.csv", lambda f: f.write(table_csv(rows).encode()))
    plot_per_class(results, out / "per_class.png")
    plot_groups(rows, out / "groups.png")
    print(markdown + f"\n{len(results)} results; table and plots in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
