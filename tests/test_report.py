import csv
import json
import subprocess
import sys

import pytest

import report
from tests.conftest import REPO_ROOT


@pytest.fixture
def fake_runs(tmp_path):
    """2 methods x 3 splits x 2 shots with known values: SimCLR full-shot All = 80, 82, 84."""
    for m, method in enumerate(["SimCLR", "SimCLR+COLT"]):
        for k in range(3):
            for s, shot in enumerate(["full", "few"]):
                base = 80 + 2 * k + 5 * m - 20 * s
                result = {"method": method, "shot": shot, "split": f"split{k + 1}_D_i", "all": base,
                          "many": base + 10, "medium": base, "few": base - 10, "std": 8.0 + k,
                          "per_class": [base + 10, base, base - 10], "class_counts": [300, 100, 20]}
                folder = tmp_path / f"{method}_split{k + 1}_{shot}"
                folder.mkdir()
                (folder / "results.json").write_text(json.dumps(result))
    return tmp_path


def test_table_means_and_population_stds(fake_runs):
    rows = report.build_table(report.collect_results([fake_runs]))
    simclr = next(r for r in rows if r["method"] == "SimCLR")
    colt = next(r for r in rows if r["method"] == "SimCLR+COLT")
    assert simclr["full", "all"] == (82.0, pytest.approx(1.63299, abs=1e-4), 3)
    assert colt["few", "few"][0] == 57.0 and simclr["full", "std"][0] == 9.0
    markdown = report.format_markdown(rows)
    header = markdown.splitlines()[0]
    for column in ("Full-shot All", "Full-shot Many", "Full-shot Medium", "Full-shot Few", "Full-shot Std",
                   "Few-shot All", "Few-shot Std"):
        assert column in header
    assert "| SimCLR | 82.00 ± 1.63 | 92.00 ± 1.63 |" in markdown


def test_cli_writes_table_csv_and_plots(fake_runs, tmp_path):
    out = tmp_path / "report"
    result = subprocess.run([sys.executable, "report.py", str(fake_runs), "--out", str(out)], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "| SimCLR+COLT | 87.00 ± 1.63" in result.stdout
    with open(out / "table.csv") as f:
        rows = list(csv.DictReader(f))
    cell = next(r for r in rows if r["method"] == "SimCLR" and r["shot"] == "full" and r["metric"] == "all")
    assert float(cell["mean"]) == 82.0 and float(cell["std"]) == pytest.approx(1.633, abs=1e-3) and cell["n"] == "3"
    for name in ("per_class.png", "groups.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_results_is_one_error_line(tmp_path):
    result = subprocess.run([sys.executable, "report.py", str(tmp_path), "--out", str(tmp_path / "out")],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stderr.strip().startswith("error: no results.json")
    assert not (tmp_path / "out").exists()


def test_per_class_values_are_aligned_by_frequency_rank():
    """Two splits that rank the classes differently: rank 1 is each split's own head class."""
    assert report.by_rank([10, 90, 50], [5, 500, 50]).tolist() == [90, 50, 10]
    assert report.by_rank([90, None, 10], [500, 50, 5]).tolist()[:1] == [90]
