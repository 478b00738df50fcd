"""cmds/readme_tables.py on made-up finished runs: the README block (table, provenance, sentences that hold for
the numbers shown, threads check, CPU seconds) replaces only the marked lines; mixed builds and a work tree
that differs from its commit are refused."""
from __future__ import annotations

import importlib.util
import json

import pytest

from tests.conftest import REPO_ROOT

spec = importlib.util.spec_from_file_location("readme_tables", REPO_ROOT / "cmds" / "readme_tables.py")
readme_tables = importlib.util.module_from_spec(spec)
spec.loader.exec_module(readme_tables)

RUN = {"commit": "abc123", "torch": "2.14.1", "torchvision": "0.29.1", "numpy": "2.4.6", "cpu": "Test CPU"}


def fake_quickstart(folder, offsets, run=RUN, cpu=900.0):
    """A finished quickstart: three methods' full- and few-shot results (SimCLR's + offsets), args.json files."""
    for method, key in (("SimCLR", "simclr"), ("SimCLR+COLT", "colt"), ("SimCLR+MAK", "mak")):
        (folder / key).mkdir(parents=True)
        (folder / key / "args.json").write_text(json.dumps({"run": run}))
        for shot in ("full", "few"):
            probe = folder / "probes" / f"{key}_{shot}"
            probe.mkdir(parents=True)
            base = {"all": 50.0, "many": 60.0, "medium": 50.0, "few": 40.0, "std": 8.0}
            values = {m: v + offsets.get(method, {}).get(m, 0.0) for m, v in base.items()}
            (probe / "results.json").write_text(json.dumps({"method": method, "shot": shot, **values}))
    (folder / "report").mkdir()
    (folder / "report" / "table.md").write_text("|\n")
    (folder / "cpu_times.tsv").write_text(f"step\tcpu_s\twall_s\tload_avg_1min\npretrain\t{cpu}\t500\t1.0\n")


def test_block_from_five_seeds_and_the_threads_check(tmp_path):
    seeds = [1, 2, 3, 4, 5]
    for k in seeds:
        # COLT: Few +10 +- 1 over seeds (larger than the spread); MAK: Few +-1 (not larger)
        fake_quickstart(tmp_path / f"seed{k}", {"SimCLR+COLT": {"few": 10.0 + (k % 2), "std": -3.0},
                                                "SimCLR+MAK": {"few": (-1.0) ** k}}, cpu=800.0 + 10 * k)
    fake_quickstart(tmp_path / "seed1_threads1", {"SimCLR": {"all": 0.25}, "SimCLR+COLT": {"few": 11.0, "std": -3.0},
                                                  "SimCLR+MAK": {"few": -1.0}})
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- results: begin -->\nold table\n<!-- results: end -->\nrest\n")
    assert readme_tables.main(["--runs_dir", str(tmp_path), "--readme", str(readme), "--reuse"]) == 0
    text = readme.read_text()
    assert text.startswith("intro\n<!-- results: begin -->\n| Method |") and text.endswith("<!-- results: end -->\nrest\n")
    assert "old table" not in text
    assert "| SimCLR+COLT | 50.00 ± 0.00 |" in text
    assert "commit `abc123` with torch 2.14.1, torchvision 0.29.1, numpy 2.4.6 on a Test CPU" in text
    # the fake runs' commit is not this checkout's: the block names both
    assert "Test CPU; the script that wrote this block ran at commit `" in text
    colt = next(line for line in text.splitlines() if line.startswith("**SimCLR+COLT"))
    assert "Full-shot Few 50.60 vs 40.00 (+10.60, better; larger than the seed spread of 0.49)" in colt
    assert "Full-shot Std 5.00 vs 8.00 (-3.00, better; larger than the seed spread of 0.00)" in colt
    assert "4 of 6 of these columns are better than SimCLR's by more than the seed spread" in colt
    mak = next(line for line in text.splitlines() if line.startswith("**SimCLR+MAK"))
    assert "not larger than the seed spread" in mak and "cannot be told from the seed noise" in mak
    assert "moved the table's cells by up to 0.25 points (SimCLR Full-shot all)" in text
    assert "830 CPU-seconds on average (min 810, max 850)" in text
    assert "seed 1 500 s (1.0), seed 2 500 s (1.0)" in text  # wall time and load per seed


def test_refuses_mixed_builds_and_uncommitted_code(tmp_path):
    for k in range(1, 6):
        fake_quickstart(tmp_path / f"seed{k}", {}, run={**RUN, "torch": "2.14.1" if k < 5 else "2.13.0"})
    readme = tmp_path / "README.md"
    readme.write_text(f"{readme_tables.BEGIN}\n{readme_tables.END}\n")
    args = ["--runs_dir", str(tmp_path), "--readme", str(readme), "--reuse", "--threads_seed", "0"]
    with pytest.raises(SystemExit, match="different builds or machines"):
        readme_tables.main(args)
    (tmp_path / "seed5").rename(tmp_path / "old")
    fake_quickstart(tmp_path / "seed5", {}, run={**RUN, "commit": "abc123+changes"})
    for k in range(1, 5):
        for key in ("simclr", "colt", "mak"):
            (tmp_path / f"seed{k}" / key / "args.json").write_text(json.dumps({"run": {**RUN, "commit": "abc123+changes"}}))
    with pytest.raises(SystemExit, match="commit first"):
        readme_tables.main(args)
    assert readme.read_text() == f"{readme_tables.BEGIN}\n{readme_tables.END}\n"
    with pytest.raises(SystemExit):
        readme_tables.main(["--seeds", "1", "2", "3", "--runs_dir", str(tmp_path)])  # fewer than 5 seeds
