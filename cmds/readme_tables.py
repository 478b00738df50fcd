r"""Write the README's results block from quickstart runs of the code at hand.

    python cmds/readme_tables.py                      # seeds 1-5 + the threads check, then README.md
    python cmds/readme_tables.py --reuse              # use finished runs under --runs_dir, run the missing

Runs ``cmds/quickstart.sh`` once per seed (``--runs_dir``/seed<k>), and once more for ``--threads_seed`` with
one torch thread (``OMP_NUM_THREADS=1``; the others run with the default, one per core), then replaces the
block between the README's ``<!-- results: begin -->`` and ``<!-- results: end -->`` markers with: the table
(mean ± population std over the seeds), the commit, torch version and CPU kind the numbers came from, the
sentences of interpretation (generated from the numbers shown: an effect counts as larger than the seed
spread when the two means differ by more than the larger of the two stds), what the samplers picked, the
tailness ordering per COLT round, how far the threads check moved the numbers, and the CPU seconds.

Refuses to write numbers from a work tree that differs from its commit (they could not be reproduced from
the commit named), unless ``--allow_changes``.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from report import build_table, collect_results, format_markdown  # noqa: E402
from report_picks import MAK_TERMS_TEXT, NEAR_TEXT, collect, mak_terms_rows, spearman_markdown  # noqa: E402
from utils.logger import environment  # noqa: E402
from utils.picks import mak_terms_markdown, mean_picks, near_markdown, picks_markdown  # noqa: E402

BEGIN, END = "<!-- results: begin -->", "<!-- results: end -->"
# (shot, metric, what a gain means): the columns the sentences speak of
CLAIMS = (("full", "all", "higher is better"), ("full", "few", "higher is better"), ("full", "std", "lower is better"),
          ("few", "all", "higher is better"), ("few", "few", "higher is better"), ("few", "std", "lower is better"))
SHOT_NAME = {"full": "Full-shot", "few": "Few-shot"}


def run_quickstart(save_dir: Path, seed: int, threads: int | None, python: str) -> None:
    env = {**os.environ, "SEED": str(seed), "SAVE_DIR": str(save_dir), "PYTHON": python}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    print(f"quickstart seed {seed}{f', {threads} thread(s)' if threads else ''} -> {save_dir}", flush=True)
    subprocess.run(["bash", str(REPO / "cmds" / "quickstart.sh")], env=env, check=True, cwd=REPO)


def finished(save_dir: Path) -> bool:
    return (save_dir / "report" / "table.md").is_file() and (save_dir / "cpu_times.tsv").is_file()


def provenance(save_dirs: list[Path]) -> dict:
    """The commit, library versions and CPU of the runs (from each pre-training run's args.json); all must agree."""
    seen = {}
    for folder in save_dirs:
        for args_file in sorted(folder.glob("*/args.json")):
            run = json.loads(args_file.read_text()).get("run", {})
            key = tuple(run.get(k) for k in ("commit", "torch", "torchvision", "numpy", "cpu"))
            seen.setdefault(key, args_file)
    if len(seen) != 1:
        raise SystemExit(f"error: the runs come from different builds or machines: "
                         f"{'; '.join(f'{k} ({v})' for k, v in seen.items())}")
    commit, torch_version, torchvision_version, numpy_version, cpu = next(iter(seen))
    return {"commit": commit, "torch": torch_version, "torchvision": torchvision_version, "numpy": numpy_version,
            "cpu": cpu}


def cpu_seconds(save_dir: Path) -> float:
    lines = (save_dir / "cpu_times.tsv").read_text().splitlines()[1:]
    return sum(float(line.split("\t")[1]) for line in lines if line.strip())


def wall_time(save_dir: Path) -> tuple[float, float]:
    """(wall seconds of all steps, the highest 1-minute load average seen at a step's end)."""
    lines = [line.split("\t") for line in (save_dir / "cpu_times.tsv").read_text().splitlines()[1:] if line.strip()]
    return sum(float(line[2]) for line in lines), max(float(line[3]) for line in lines)


def cells(rows: list[dict]) -> dict:
    return {(row["method"], shot, metric): row[shot, metric] for row in rows
            for shot in ("full", "few") for metric in ("all", "many", "medium", "few", "std")}


def sentences(rows: list[dict], baseline: str = "SimCLR") -> list[str]:
    """One sentence per method and claimed column, from the table's own means and stds."""
    table = cells(rows)
    out = []
    for row in rows:
        method = row["method"]
        if method == baseline:
            continue
        parts, gains, losses = [], 0, 0
        for shot, metric, direction in CLAIMS:
            mine, base = table.get((method, shot, metric)), table.get((baseline, shot, metric))
            if not mine or not base:
                continue
            diff = mine[0] - base[0]
            spread = max(mine[1], base[1])
            better = diff > 0 if direction == "higher is better" else diff < 0
            larger = abs(diff) > spread
            gains, losses = gains + (larger and better), losses + (larger and not better)
            size = "larger than" if larger else "not larger than"
            parts.append(f"{SHOT_NAME[shot]} {metric.capitalize() if metric != 'std' else 'Std'} "
                         f"{mine[0]:.2f} vs {base[0]:.2f} ({diff:+.2f}, {'better' if better else 'worse'}; "
                         f"{size} the seed spread of {spread:.2f})")
        verdict = (f"{gains} of {len(parts)} of these columns are better than {baseline}'s by more than the seed "
                   f"spread" + (f", {losses} worse by more than it" if losses else "")
                   + ("" if gains or losses else ": at this scale the effect cannot be told from the seed noise"))
        out.append(f"**{method} against {baseline}**: " + "; ".join(parts) + f". {verdict}.")
    return out


def max_difference(a: list[dict], b: list[dict]) -> tuple[float, str]:
    """The largest absolute difference between two tables' means, and where it is."""
    ta, tb = cells(a), cells(b)
    worst, where = 0.0, "none"
    for key, cell in ta.items():
        other = tb.get(key)
        if cell and other and abs(cell[0] - other[0]) > worst:
            worst, where = abs(cell[0] - other[0]), f"{key[0]} {SHOT_NAME[key[1]]} {key[2]}"
    return worst, where


def block(seeds, save_dirs, threads_dirs, threads_seed) -> str:
    results = collect_results([d / "probes" for d in save_dirs])
    rows = build_table(results)
    info = provenance(save_dirs + threads_dirs)
    rendered = environment()["commit"]
    text = [format_markdown(rows).rstrip("\n"), ""]
    text.append(f"Mean ± population std over seeds {', '.join(map(str, seeds))} (`SEED=k bash cmds/quickstart.sh`), "
                f"written by `python cmds/readme_tables.py` from runs of commit `{info['commit']}` with torch "
                f"{info['torch']}, torchvision {info['torchvision']}, numpy {info['numpy']} on a {info['cpu']}"
                + ("." if rendered == info["commit"] else f"; the script that wrote this block ran at commit "
                                                           f"`{rendered}` (`--reuse` of the finished runs)."))
    text.append("")
    text += sentences(rows)
    picks, spearman, terms = collect(results)
    if picks:
        pick_rows = [(f"{m}: {s}", mean_picks(v)) for (m, s), v in picks.items()]
        text += ["", "What the samplers picked (share of the chosen pool items near a tail / medium / head class "
                     "or far; in brackets the ratio to the pool's share; mean ± std over the seeds):", "",
                 picks_markdown(pick_rows).rstrip("\n"), "", "Which classes the near picks are near. " + NEAR_TEXT,
                 "", near_markdown(pick_rows).rstrip("\n")]
    if terms:
        text += ["", "What drove MAK's choice (mean over the seeds). " + MAK_TERMS_TEXT, "",
                 mak_terms_markdown(mak_terms_rows(terms)).rstrip("\n")]
    if spearman:
        text += ["", "Tailness ordering before each COLT round (Spearman of mean class tailness vs class count; "
                     "positive: head classes score higher, as COLT assumes):", "",
                 spearman_markdown(spearman).rstrip("\n")]
    if threads_dirs:
        seed_dir = save_dirs[seeds.index(threads_seed)]
        one = build_table(collect_results([threads_dirs[0] / "probes"]))
        two = build_table(collect_results([seed_dir / "probes"]))
        worst, where = max_difference(one, two)
        text += ["", f"Repeats bit for bit: a run of a given seed on the same machine and library build gives the "
                     f"same numbers. Other thread counts, CPU kinds or builds change the floating-point "
                     f"summation order: seed {threads_seed} with one torch thread (`OMP_NUM_THREADS=1`) against "
                     f"the default moved the table's cells by up to {worst:.2f} points ({where})."]
    seconds = [cpu_seconds(d) for d in save_dirs]
    text += ["", f"CPU time of one quickstart (user + sys of all its processes, `cpu_times.tsv`): "
                 f"{np.mean(seconds):.0f} CPU-seconds on average (min {min(seconds):.0f}, max {max(seconds):.0f}). "
                 "Wall time per seed (the highest 1-minute load average at a step's end in brackets; "
                 "2 cores, so a load above 2 means another job shared them): "
                 + ", ".join(f"seed {s} {w:.0f} s ({load:.1f})" for s, (w, load) in
                             zip(seeds, (wall_time(d) for d in save_dirs))) + "."]
    return "\n".join(text) + "\n"


def write_readme(readme: Path, content: str) -> None:
    text = readme.read_text()
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise SystemExit(f"error: {readme} has no {BEGIN} ... {END} block")
    readme.write_text(pattern.sub(lambda _: f"{BEGIN}\n{content}{END}", text))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5], help="quickstart seeds (at least 5)")
    p.add_argument("--threads_seed", type=int, default=1,
                   help="seed run again with OMP_NUM_THREADS=1 for the threads check (0: no check)")
    p.add_argument("--runs_dir", default="runs/readme", help="folder of the runs (one per seed)")
    p.add_argument("--readme", default=str(REPO / "README.md"), help="the file whose results block is replaced")
    p.add_argument("--reuse", action="store_true", help="keep finished runs under --runs_dir, run only the missing")
    p.add_argument("--allow_changes", action="store_true",
                   help="write numbers although the work tree differs from its commit (not reproducible)")
    p.add_argument("--python", default=sys.executable, help="the Python the quickstart runs")
    args = p.parse_args(argv)
    if len(args.seeds) < 5 or len(set(args.seeds)) != len(args.seeds):
        p.error("--seeds: at least 5 different seeds")
    if args.threads_seed and args.threads_seed not in args.seeds:
        p.error("--threads_seed must be one of --seeds")
    runs = Path(args.runs_dir)
    save_dirs = [runs / f"seed{s}" for s in args.seeds]
    threads_dirs = [runs / f"seed{args.threads_seed}_threads1"] if args.threads_seed else []
    jobs = [(d, s, None) for d, s in zip(save_dirs, args.seeds)]
    jobs += [(threads_dirs[0], args.threads_seed, 1)] if threads_dirs else []
    for save_dir, seed, threads in jobs:
        if not (args.reuse and finished(save_dir)):
            run_quickstart(save_dir, seed, threads, args.python)
    content = block(args.seeds, save_dirs, threads_dirs, args.threads_seed)
    commit = provenance(save_dirs + threads_dirs)["commit"]
    if commit.endswith("+changes") or commit == "not a git checkout":
        if not args.allow_changes:
            print(content)
            raise SystemExit(f"error: the runs' code is {commit}: commit first (or --allow_changes); the block "
                             f"above was not written")
    write_readme(Path(args.readme), content)
    print(content + f"\nwritten to {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
