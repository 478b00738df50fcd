r"""The SDCLR release's summary command: the papers' table of the matching probes of one dataset.

    python exp_analyse.py --dataset cifar10 --LT --prune --fewShot

Reads every results.json under <runs_dir>/probes (the launchers' probes folder) and keeps those of the
long-tailed splits with --LT (CIFAR: *_D_i, ImageNet-100 / Places: *_LT_*), else of the balanced ones
(*_D_b, *_BL_*); of the methods with SDCLR's pruned branch with --prune (SDCLR, BCL-D, with or without COLT),
else of the others; few-shot probes with --fewShot, else full-shot. Prints one row per method, each cell the
mean ± std over splits (report.py's table).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run from a checkout without installing

from data import registry  # noqa: E402
from report import build_table, collect_results, format_markdown  # noqa: E402
from utils.cli import HelpFormatter  # noqa: E402
from utils.names import is_pruned_label, split_stem  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--dataset", default="cifar100", help="the dataset (registry name or alias)")
    p.add_argument("--LT", action="store_true", help="the long-tailed pre-training splits (else the balanced ones)")
    p.add_argument("--prune", action="store_true", help="the methods with SDCLR's pruned branch (else the others)")
    p.add_argument("--fewShot", action="store_true", help="few-shot probes (else full-shot)")
    p.add_argument("--runs_dir", default=None,
                   help="the launchers' runs folder; probes are read from <runs_dir>/probes "
                        "(default checkpoints/<dataset> of the checkout)")
    args = p.parse_args(argv)
    try:
        args.dataset = registry.canonical_dataset(args.dataset)
    except ValueError as e:
        p.error(str(e))
    return args


def pruned(result: dict) -> bool:
    """Whether the probed run had the pruned branch: its pre-training args.json says so, else its label."""
    settings = Path(result.get("checkpoint") or "").parent / "args.json"
    if settings.is_file():
        saved = json.loads(settings.read_text())
        if "prune" in saved:
            return bool(saved["prune"])
    return is_pruned_label(result["method"])


def matching(results: list[dict], dataset: str, long_tailed: bool, prune: bool, few_shot: bool) -> list[dict]:
    balance = "long-tailed" if long_tailed else "balanced"
    return [r for r in results if r["shot"] == ("few" if few_shot else "full")
            and registry.split_balance(dataset, split_stem(r.get("split") or "")) == balance and pruned(r) == prune]


def main(argv=None) -> int:
    args = parse_args(argv)
    probes = Path(args.runs_dir or registry.REPO_ROOT / "checkpoints" / args.dataset) / "probes"
    try:
        results = collect_results([probes])
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    splits = registry.dataset(args.dataset).splits
    kept = matching(results, args.dataset, args.LT, args.prune, args.fewShot)
    what = (f"{args.dataset}, {'long-tailed' if args.LT else 'balanced'} splits "
            f"(*{splits.long_tailed if args.LT else splits.balanced}*), "
            f"{'pruned (SDCLR, BCL-D)' if args.prune else 'unpruned'} methods, "
            f"{'few' if args.fewShot else 'full'}-shot")
    if not kept:
        print(f"error: no probe results of {what} under {probes}", file=sys.stderr)
        return 1
    print(f"{what}: {len(kept)} probe results from {probes}")
    print(format_markdown(build_table(kept)), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
