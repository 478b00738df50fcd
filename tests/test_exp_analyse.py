"""exp_analyse.py, the SDCLR release's summary command: the table of the matching probes."""
import json

import pytest

import exp_analyse


def write_probe(probes, method, split, shot, all_accuracy, prune=None):
    run = probes.parent / f"{method}_{split}"
    run.mkdir(exist_ok=True)
    if prune is not None:
        (run / "args.json").write_text(json.dumps({"prune": prune}))
    probe = probes / f"{method}_{split}_{shot}"
    probe.mkdir(parents=True)
    (probe / "results.json").write_text(json.dumps({
        "all": all_accuracy, "many": all_accuracy, "medium": all_accuracy, "few": all_accuracy, "std": 0.0,
        "method": method, "shot": shot, "split": f"/splits/{split}.npy", "checkpoint": str(run / "model.pt")}))


@pytest.fixture
def runs(tmp_path):
    probes = tmp_path / "probes"
    for k, accuracy in ((1, 50.0), (2, 52.0)):
        for shot in ("full", "few"):
            write_probe(probes, "SimCLR", f"split{k}_D_i", shot, accuracy)
            write_probe(probes, "SDCLR", f"split{k}_D_i", shot, accuracy + 5)
            write_probe(probes, "SimCLR", f"split{k}_D_b", shot, accuracy + 10)
    write_probe(probes, "Mine", "split1_D_i", "full", 70.0, prune=True)  # pruned by its args.json, not its label
    return tmp_path


def table(capsys, *args):
    assert exp_analyse.main(list(args)) == 0
    lines = capsys.readouterr().out.splitlines()
    return "\n".join(lines[:2]), {line.split("|")[1].strip(): line for line in lines[3:]}


def test_the_readme_summaries(runs, capsys):
    head, rows = table(capsys, "--dataset", "cifar10", "--LT", "--prune", "--runs_dir", str(runs))
    assert set(rows) == {"SDCLR", "Mine"} and "| 56.00 ± 1.00 |" in rows["SDCLR"] and "long-tailed" in head
    _, rows = table(capsys, "--dataset", "cifar10", "--LT", "--runs_dir", str(runs))
    assert set(rows) == {"SimCLR"} and "| 51.00 ± 1.00 |" in rows["SimCLR"]
    head, rows = table(capsys, "--dataset", "cifar", "--runs_dir", str(runs), "--fewShot")
    assert set(rows) == {"SimCLR"} and "| 61.00 ± 1.00 |" in rows["SimCLR"] and "Few-shot All" in head


def test_nothing_matching_is_an_error(runs, capsys):
    assert exp_analyse.main(["--dataset", "cifar10", "--prune", "--runs_dir", str(runs)]) == 1
    assert "error: no probe results of cifar10, balanced splits" in capsys.readouterr().err
