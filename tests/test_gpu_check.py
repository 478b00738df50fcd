"""The GPU check's script on the CPU: the dry run lists every stage, bad input is one error line, the stage
runner's hard limits, kills and budget, the report, and the steps that compare runs. The stages themselves
run in CI through ``bash cmds/gpu_check.sh --cpu_smoke``."""
import json
import os
import subprocess
import sys
import threading
import time
from argparse import Namespace
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "cmds"))
import gpu_check  # noqa: E402

ALL_STAGES = ["0", "1", "c", "2", "3", "4", "5a", "5b", "5c"]


def script(*args, env=None, timeout=120):
    return subprocess.run(["bash", str(REPO_ROOT / "cmds" / "gpu_check.sh"), *args], capture_output=True, text=True,
                          cwd=REPO_ROOT, timeout=timeout, env={**os.environ, "PYTHON": sys.executable, **(env or {})})


def test_dry_run_lists_every_stage_with_its_commands_and_limits(tmp_path):
    result = script("--dry_run", "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    text = result.stdout
    for key in ALL_STAGES:
        assert f"\nstage {key}: " in text, key
    assert text.count("  time limit ") == len(ALL_STAGES)
    for command in ("pytest -m cuda", "gpu_check.py deterministic train_simclr.py", "SIGKILL once model_3.pt",
                    "--resume", "torch.distributed.run", "LTSSL_DIST_BACKEND=gloo", "LTSSL_SHARE_GPU=1",
                    "--compile", "infer_features.py", "sample_mak.py", "--additional_split",
                    "bench/bench_train.py --kind cifar", "bench/bench_train.py --kind imagenet",
                    "bench/bench_mak.py --devices cuda --ecle_n 100000"):
        assert command in text, command
    assert not (tmp_path / "out").exists()  # a dry run writes nothing
    smoke = script("--dry_run", "--cpu_smoke")
    assert smoke.returncode == 0 and "--device cpu" in smoke.stdout and "--device cuda" not in smoke.stdout
    assert "stage 5a: " in smoke.stdout and "not run: GPU only" in smoke.stdout
    several = script("--dry_run", "-g", "4")
    assert "--nproc_per_node 4" in several.stdout and "LTSSL_SHARE_GPU" not in several.stdout


@pytest.mark.parametrize("args,message", [
    (["-g", "0"], "-g must be at least 1"),
    (["--stages", "1,7"], "unknown stages 7"),
    (["--cpu_smoke"], "already holds a report"),
])
def test_bad_input_is_one_error_line_and_writes_nothing(tmp_path, args, message):
    (tmp_path / "gpu_check.json").write_text("{}")
    before = sorted(p.name for p in tmp_path.iterdir())
    result = script(*args, "--out", str(tmp_path))
    assert result.returncode != 0
    assert message in result.stderr.strip().splitlines()[-1] and "Traceback" not in result.stderr, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_stage_selection():
    gpu, smoke = gpu_check.GPU, gpu_check.CPU_SMOKE
    assert gpu_check.select_stages(None, gpu) == set(ALL_STAGES)
    assert gpu_check.select_stages("5", gpu) == {"5a", "5b", "5c"}
    assert gpu_check.select_stages("2", gpu) == {"0", "2"}  # the data come along
    assert gpu_check.select_stages(None, smoke) == {"0", "1", "2", "3", "4"}
    names = [name for name, flags in gpu_check.RESUME_VARIANTS]
    assert len(names) == len(set(names)) and all(isinstance(f, list) for _, f in gpu_check.RESUME_VARIANTS)


def make_check(tmp_path, bodies, budget=60.0, scale=1.0):
    """A Check whose stages are ``bodies``: (key, limit, reserve, function); keys from ALL_STAGES."""
    args = Namespace(dry_run=False, out=str(tmp_path / "out"), work=str(tmp_path / "work"), gpus=1,
                     budget_s=budget, stages=None)
    profile = gpu_check.Profile(**{**gpu_check.CPU_SMOKE.__dict__, "limit_scale": scale})
    check = gpu_check.Check(args, profile)
    check.stages = [gpu_check.Stage(key, f"stage {key}", limit, reserve, body) for key, limit, reserve, body in bodies]
    check.selected = {key for key, *_ in bodies}
    return check


PY = sys.executable


def test_a_hanging_stage_is_killed_at_its_limit_and_the_next_still_runs(tmp_path):
    seen = {}

    def hangs(run):
        result = run.run([PY, "-c", "import time; print('started', flush=True); time.sleep(60)"])
        seen["hang"] = result
        report = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
        seen["report_during"] = [s["stage"] for s in report["stages"]]
        if result.timed_out:
            run.fail("timed out")

    def works(run):
        seen["work"] = run.run([PY, "-c", "print('fine')"])

    def raises(run):
        raise RuntimeError("boom")

    check = make_check(tmp_path, [("0", 60, 0, works), ("1", 4, 0, hangs), ("2", 60, 0, raises), ("3", 60, 0, works)])
    start = time.monotonic()
    assert check.main() == 1
    assert time.monotonic() - start < 30
    assert seen["hang"].timed_out and seen["hang"].rc == 124 and "started" in seen["hang"].output
    assert seen["report_during"] == ["0", "1"]  # rewritten after stage 0, before stage 1 ended
    report = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert [(s["stage"], s["status"]) for s in report["stages"]] == [("0", "pass"), ("1", "fail"), ("2", "error"),
                                                                     ("3", "pass")]
    assert "RuntimeError: boom" in report["stages"][2]["notes"][0]
    md = (tmp_path / "out" / "gpu_check.md").read_text()
    assert "| 1 | stage 1 | fail |" in md and "NOT all stages passed" in md
    log = (tmp_path / "out" / "gpu_check.log").read_text()
    assert "fine" in log and "time limit" in log


def test_kill_when_sends_sigkill_and_the_budget_keeps_the_reserves(tmp_path):
    marker = tmp_path / "marker"
    seen = {}

    def killed(run):
        code = f"import pathlib, time; pathlib.Path({str(marker)!r}).touch(); time.sleep(60)"
        seen["kill"] = run.run([PY, "-c", code], kill_when=marker.exists)

    def limits(run):
        seen.setdefault("limits", []).append(round(run.limit))

    check = make_check(tmp_path, [("0", 30, 0, killed), ("1", 100, 10, limits), ("2", 100, 25, limits)], budget=50)
    assert check.main() == 0
    assert seen["kill"].rc == -9 and not seen["kill"].timed_out
    first, second = seen["limits"]
    assert 20 <= first <= 25 and 20 <= second <= 50  # stage 1 leaves stage 2 its 25 s reserve


def test_a_stopped_check_kills_its_processes_and_keeps_the_report(tmp_path):
    def slow(run):
        run.run([PY, "-c", "import time; time.sleep(60)"])

    check = make_check(tmp_path, [("0", 60, 0, slow), ("1", 60, 0, slow)])
    threading.Timer(1.5, lambda: setattr(check, "aborted", True)).start()
    start = time.monotonic()
    assert check.main() == 124
    assert time.monotonic() - start < 20
    report = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert [(s["stage"], s["status"]) for s in report["stages"]] == [("0", "killed")]


def test_report_compares_the_benchmarks_with_the_targets(tmp_path):
    check = make_check(tmp_path, [("5a", 10, 0, lambda run: None)])
    out = tmp_path / "out"
    out.mkdir()
    (out / "bench_train_cifar.json").write_text(json.dumps({
        "model_only_img_s": 10000.0, "batched_step_img_s": 9500.0, "per_image_step_img_s": 4000.0,
        "colt_over_plain": 1.05, "round_over_epoch": 0.2, "peak_device_mib": 5000.0}))
    (out / "bench_mak.json").write_text(json.dumps({"k_center": [{"ours_s": 1.5, "release_scaled_s": 900.0}],
                                                    "ecle": [{"per_100k_s": 3.0}]}))
    check.env_info = {"gpu_name": "Some GPU", "gpu_count": 1, "gpu_memory_gib": 80.0, "torch": "2.x"}
    report = gpu_check.build_report(check)
    met = {t["key"] + ("/imagenet" if "ImageNet" in t["figure"] else ""): t["met"] for t in report["targets"]}
    assert met == {"batched_over_model": True, "colt_over_plain": False, "round_over_epoch": True,
                   "batched_over_model/imagenet": None, "colt_over_plain/imagenet": None, "sdclr_over_simclr": None,
                   "bcl_i_over_batched_simclr": None, "bcl_d_over_batched_simclr": None}
    md = gpu_check.render_markdown(report)
    assert "| CIFAR: SimCLR+COLT step time / SimCLR step time | 1.05 | <= 1.03 | no |" in md
    assert "Some GPU" in md and "| bench_mak | k_center_s | 1.5 |" in md and "not measured" in md


def test_junit_counts(tmp_path):
    (tmp_path / "r.xml").write_text(
        '<testsuites><testsuite><testcase classname="a" name="x"/><testcase classname="a" name="y">'
        '<failure/></testcase><testcase classname="b" name="z"><skipped/></testcase></testsuite></testsuites>')
    assert gpu_check.junit_counts(tmp_path / "r.xml") == {"tests": 3, "passed": 1, "failed": 1, "skipped": 1,
                                                          "failed_names": ["a.y"]}
    assert gpu_check.junit_counts(tmp_path / "missing.xml") == {}


def save_run(folder: Path, weights: dict, picks=None, loss=5.0):
    folder.mkdir(parents=True)
    state = {"state_dict": weights, "epoch": 2}
    if picks is not None:
        state["colt"] = {"ood_indices": torch.tensor(picks), "rounds_done": 1}
    torch.save(state, folder / "model.pt")
    (folder / "log.txt").write_text(f"[12:00:00] epoch 1/2 loss {loss:.4f} 100 img/s (1.5s)\n")


def test_compare_runs_reports_bitwise_equality_and_differences(tmp_path):
    w = {"a": torch.ones(3), "b": torch.arange(4.0), "n": torch.tensor(5)}
    save_run(tmp_path / "x", w, picks=[1, 2, 3])
    save_run(tmp_path / "y", {k: v.clone() for k, v in w.items()}, picks=[1, 2, 3])
    save_run(tmp_path / "z", {**w, "b": torch.tensor([0.0, 1.0, 2.0, 3.3])}, picks=[1, 2, 4], loss=5.5)
    assert gpu_check.main(["compare_runs", str(tmp_path / "x"), str(tmp_path / "y"), "--json", str(tmp_path / "s.json")]) == 0
    same = json.loads((tmp_path / "s.json").read_text())
    assert same["bitwise"] and same["selections_equal"] and same["tensors_differing"] == 0
    assert same["first_loss"] == 5.0 and same["epoch_seconds"] == 1.5 and same["loss_rel_diff"] == 0
    gpu_check.main(["compare_runs", str(tmp_path / "x"), str(tmp_path / "z"), "--json", str(tmp_path / "d.json")])
    differ = json.loads((tmp_path / "d.json").read_text())
    assert not differ["bitwise"] and differ["tensors_differing"] == 1 and not differ["selections_equal"]
    assert differ["max_abs_diff"] == pytest.approx(0.3) and differ["max_rel_diff"] == pytest.approx(0.1)
    assert differ["selection_overlap"] == pytest.approx(2 / 3) and differ["loss_rel_diff"] == pytest.approx(0.1)
    assert gpu_check.main(["compare_runs", str(tmp_path / "x"), str(tmp_path / "none"), "--json",
                           str(tmp_path / "e.json")]) == 1
    assert "error" in json.loads((tmp_path / "e.json").read_text())
