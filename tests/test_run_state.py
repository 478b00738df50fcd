"""Nothing is lost to a NaN, a changed --resume, an --overwrite or a late failure, and bad input fails at
start-up with one line. The lost-data cases compare checksums of the files that must survive."""
import hashlib
import json
import os
import subprocess
import sys
from argparse import Namespace

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

import report
import train_linear
import train_simclr
from methods import Method
from data.datasets import ImageDecodeError, ImageFilesDataset, decode_error_message
from tests.conftest import REPO_ROOT
from tests.hostile import image_list_with_a_bad_image
from tests.test_train import run_cli, synthetic_root, tiny_args  # noqa: F401 (fixture)
from utils import run_state
from utils.logger import write_args
from utils.resume import changed_inputs, input_fingerprints, resume_differences, saved_args


def checksums(folder, names=None) -> dict:
    """sha256 of every file under ``folder`` (or of the named ones)."""
    files = [folder / n for n in names] if names else sorted(p for p in folder.rglob("*") if p.is_file())
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def failure(fn, argv, capsys) -> str:
    """The one line a failing entry point gives: SystemExit's message, or argparse's last stderr line."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        fn(argv)
    code = e.value.code
    text = code if isinstance(code, str) else capsys.readouterr().err.strip().splitlines()[-1]
    assert code not in (0, None) and "\n" not in text and "Traceback" not in text, text
    return text


def siblings(run_dir):
    return sorted(p.name for p in run_dir.parent.iterdir() if p.name != run_dir.name)


def inject_nan(monkeypatch, epoch: int, step: int):
    """Make the loss of (epoch, step) NaN, as a too large --lr would."""
    original_epoch, original_step = train_simclr.train_one_epoch, Method.step
    target, calls = (epoch, step), {"epoch": 0}

    def train_one_epoch(*args, **kwargs):
        calls["epoch"] = args[6]
        return original_epoch(*args, **kwargs)

    def nan_step(self, *args, **kwargs):
        out = original_step(self, *args, **kwargs)
        e = calls["epoch"]
        calls[e] = calls.get(e, 0) + 1
        if (e, calls[e]) == target:
            out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(train_simclr, "train_one_epoch", train_one_epoch)
    monkeypatch.setattr(Method, "step", nan_step)


def crash_in_epoch(monkeypatch, epoch: int, check=None):
    original = train_simclr.train_one_epoch

    def train_one_epoch(*args, **kwargs):
        if args[6] == epoch:
            if check:
                check()
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(train_simclr, "train_one_epoch", train_one_epoch)


# 1. Non-finite loss --------------------------------------------------------------------------------------

def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(synthetic_root, tmp_path, monkeypatch,
                                                                      capsys):
    argv = tiny_args(synthetic_root, tmp_path)
    crash_in_epoch(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        train_simclr.main(argv)
    monkeypatch.undo()
    run_dir = tmp_path / "run"
    before = checksums(run_dir, ["model.pt", "args.json"])
    inject_nan(monkeypatch, epoch=2, step=2)
    message = failure(train_simclr.main, argv + ["--resume"], capsys)
    assert message.startswith("error: non-finite loss (nan) at epoch 2, step 2 of 2")
    assert f"{run_dir / 'model.pt'} is kept unchanged" in message
    assert checksums(run_dir, ["model.pt", "args.json"]) == before
    assert torch.load(run_dir / "model.pt", weights_only=True)["epoch"] == 1
    monkeypatch.undo()
    train_simclr.main(argv + ["--resume"])  # the kept checkpoint still resumes
    assert torch.load(run_dir / "model.pt", weights_only=True)["epoch"] == 2


def test_a_diverging_first_epoch_saves_nothing_and_can_start_again(synthetic_root, tmp_path):
    result = run_cli(*tiny_args(synthetic_root, tmp_path, "--lr", "1e30"))
    last = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert last.startswith("error: non-finite") and "no checkpoint was saved" in last, result.stderr
    assert not (tmp_path / "run" / "model.pt").exists()
    run_dir = train_simclr.main(tiny_args(synthetic_root, tmp_path, "--epochs", "1"))  # no --overwrite needed
    assert torch.isfinite(torch.load(run_dir / "model.pt", weights_only=True)["state_dict"]["fc.fc2.weight"]).all()


# 2. --resume compares the settings -----------------------------------------------------------------------

def test_resume_refuses_changed_settings_and_touches_nothing(synthetic_root, tmp_path, capsys):
    run_dir = train_simclr.main(tiny_args(synthetic_root, tmp_path, "--epochs", "1"))
    before = checksums(run_dir)
    message = failure(train_simclr.main, tiny_args(synthetic_root, tmp_path, "--resume", "--epochs", "2",
                                                   "--lr", "0.1", "--temperature", "0.5"), capsys)
    assert message.startswith("error: --resume: these settings differ from the run's: --epochs 2 (run: 1), "
                              "--lr 0.1 (run: 0.5), --temperature 0.5 (run: 0.2); only --num_workers")
    assert "--extend_epochs" in message
    assert checksums(run_dir) == before
    # flags that cannot change the trajectory may change
    train_simclr.main(tiny_args(synthetic_root, tmp_path, "--epochs", "1", "--resume", "--print_freq", "5",
                                "--save_freq", "7", "--knn_every", "0"))
    assert checksums(run_dir, ["model.pt"]) == {"model.pt": before["model.pt"]}


def test_extend_epochs_is_explicit_and_logged(synthetic_root, tmp_path):
    run_dir = train_simclr.main(tiny_args(synthetic_root, tmp_path, "--epochs", "1"))
    train_simclr.main(tiny_args(synthetic_root, tmp_path, "--epochs", "2", "--resume", "--extend_epochs"))
    state = torch.load(run_dir / "model.pt", weights_only=True)
    assert state["epoch"] == 2 and state["args"]["epochs"] == 2
    assert "--extend_epochs: 1 -> 2 epochs" in (run_dir / "log.txt").read_text()
    args = json.loads((run_dir / "args.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert args["epochs"] == 2


def test_resume_comparison_is_generic_over_the_saved_args():
    args = train_simclr.parse_args(["--epochs", "10"])
    saved = saved_args(args)
    may_change = run_state.RESUME_MAY_CHANGE

    def differences(old):
        return resume_differences(saved_args(args), old, may_change, args.extend_epochs)
    assert differences(saved) == []
    old = {k: v for k, v in saved.items() if k != "lr"}  # an older checkpoint without a key: unchanged
    newer = {**saved, "flag_of_a_later_version": "cuda"}  # a key this version does not know: not compared
    assert differences(old) == differences(newer) == []
    assert differences({**saved, "temperature": 0.5, "num_workers": 99}) == ["--temperature 0.2 (run: 0.5)"]
    assert resume_differences({"epochs": 20}, {"epochs": 10}, extend_epochs=True) == []
    assert resume_differences({"epochs": 5}, {"epochs": 10}, extend_epochs=True) == ["--epochs 5 (run: 10)"]


def test_input_fingerprints_name_what_changed(tmp_path):
    split = tmp_path / "split.npy"
    np.save(split, np.arange(4))
    (tmp_path / "pool").mkdir()
    (tmp_path / "pool" / "a.png").write_bytes(b"12")
    saved = input_fingerprints({"trainSplit": split, "ood_data": tmp_path / "pool", "additional_split": None})
    assert set(saved) == {"trainSplit", "ood_data"} and saved["ood_data"]["listing"]
    assert changed_inputs(saved, input_fingerprints({"trainSplit": split, "ood_data": tmp_path / "pool"})) == []
    np.save(split, np.arange(1, 5))
    (tmp_path / "pool" / "b.png").write_bytes(b"3")
    changed = changed_inputs(saved, input_fingerprints({"trainSplit": split, "ood_data": tmp_path / "pool"}))
    assert [c.split()[0] for c in changed] == ["--trainSplit", "--ood_data"]
    assert "content changed" in changed[0] and "listing changed" in changed[1]
    assert changed_inputs({}, saved) == []  # a checkpoint of an older version recorded none


def test_args_json_is_always_valid_json(tmp_path):
    write_args(Namespace(lr=float("nan"), wd=float("inf"), name="x"), tmp_path / "args.json")
    text = (tmp_path / "args.json").read_text()
    args = json.loads(text, parse_constant=lambda c: pytest.fail(f"invalid JSON constant {c}"))
    assert {"commit", "torch"} <= args.pop("run").keys()
    assert args == {"lr": "nan", "wd": "inf", "name": "x"}


# 3. --overwrite keeps the old run until the new one has a checkpoint ----------------------------------

def test_overwrite_restores_the_old_run_when_the_new_one_fails(synthetic_root, tmp_path, monkeypatch, capsys):
    run_dir = train_simclr.main(tiny_args(synthetic_root, tmp_path, "--epochs", "1"))
    before = checksums(run_dir)
    # bad input: refused before the old run is touched
    message = failure(train_simclr.main, tiny_args(synthetic_root, tmp_path, "--overwrite", "--trainSplit",
                                                   "no_such_split"), capsys)
    assert "split 'no_such_split' not found" in message and checksums(run_dir) == before
    # a NaN in the new run's first epoch
    inject_nan(monkeypatch, epoch=1, step=1)
    assert "non-finite loss" in failure(train_simclr.main, tiny_args(synthetic_root, tmp_path, "--overwrite"),
                                        capsys)
    assert checksums(run_dir) == before and siblings(run_dir) == []
    monkeypatch.undo()
    # an interruption before the first checkpoint; meanwhile the old run waits in a hidden sibling
    seen = []
    crash_in_epoch(monkeypatch, 1, check=lambda: seen.extend(siblings(run_dir)))
    with pytest.raises(KeyboardInterrupt):
        train_simclr.main(tiny_args(synthetic_root, tmp_path, "--overwrite", "--seed", "5"))
    assert len(seen) == 1 and seen[0].startswith(".run.old-")
    assert checksums(run_dir) == before and siblings(run_dir) == []
    monkeypatch.undo()
    # success: the old run is gone once the new one saved its first checkpoint
    train_simclr.main(tiny_args(synthetic_root, tmp_path, "--overwrite", "--seed", "5"))
    assert checksums(run_dir, ["model.pt"]) != {"model.pt": before["model.pt"]} and siblings(run_dir) == []


# 4. A start that never saved a checkpoint ---------------------------------------------------------------

@pytest.mark.parametrize("again", [[], ["--resume"]], ids=["plain", "resume"])
def test_a_run_without_checkpoint_starts_again_and_stale_temporaries_go(synthetic_root, tmp_path, monkeypatch,
                                                                         again):
    crash_in_epoch(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        train_simclr.main(tiny_args(synthetic_root, tmp_path, "--epochs", "1"))
    monkeypatch.undo()
    run_dir = tmp_path / "run"
    assert (run_dir / "args.json").is_file() and not (run_dir / "model.pt").exists()
    stale = run_dir / ".model.pt.x1y2z3.tmp"  # what a kill -9 during atomic_write leaves
    stale.write_bytes(b"half a checkpoint")
    train_simclr.main(tiny_args(synthetic_root, tmp_path, "--epochs", "1", *again))
    assert not stale.exists() and torch.load(run_dir / "model.pt", weights_only=True)["epoch"] == 1
    assert "held no checkpoint" in (run_dir / "log.txt").read_text()


# 5. A checkpoint of another architecture --------------------------------------------------------------

def test_resume_with_another_width_is_one_line(synthetic_root, tmp_path, capsys):
    run_dir = train_simclr.main(tiny_args(synthetic_root, tmp_path, "--epochs", "1"))
    message = failure(train_simclr.main, tiny_args(synthetic_root, tmp_path, "--epochs", "1", "--resume",
                                                   "--width", "8"), capsys)
    assert message == (f"error: checkpoint {run_dir / 'model.pt'} was trained with --model res18 --width 4 "
                       f"--output_ch 128; this run builds --model res18 --width 8 --output_ch 128")


# 6. Start-up checks: one line, nothing written ----------------------------------------------------------

@pytest.fixture
def big_pool(tmp_path):
    folder = tmp_path / "pool64"
    folder.mkdir()
    for i in range(4):
        Image.fromarray(np.full((64, 64, 3), 40 * i, np.uint8)).save(folder / f"{i}.png")
    return folder


@pytest.mark.parametrize("extra,expected", [
    (["--lr", "nan"], "--lr must be a finite number > 0, got nan"),
    (["--lr", "0"], "--lr must be a finite number > 0, got 0.0"),
    (["--temperature", "0"], "--temperature must be a finite number > 0, got 0.0"),
    (["--weight_decay", "-1"], "--weight_decay must be a finite number >= 0"),
    (["--momentum", "1"], "--momentum must be in [0, 1)"),
    (["--num_workers", "-1"], "--num_workers must be >= 0, got -1"),
    (["--COLT", "--k_largest_logits", "31"], "--k_largest_logits 31 exceeds the 30 negatives"),
    (["--COLT", "--k_means_clusters", "5000"], "--k_means_clusters 5000 exceeds the 1698 ID images"),
    (["--COLT", "--sample_set", "folder", "--ood_data", "POOL", "--budget", "2"],
     "the OOD pool's images are 64x64, the ID images 32x32"),
    (["--trainSplit", "TEXT"], "is a text file, not a .npy index file"),
    (["--extend_epochs"], "--extend_epochs extends a run: add --resume"),
])
def test_bad_settings_fail_at_start_up(synthetic_root, tmp_path, big_pool, capsys, extra, expected):
    (tmp_path / "list.txt").write_text("a/b.JPEG 0\n")
    extra = [str(big_pool) if e == "POOL" else str(tmp_path / "list.txt") if e == "TEXT" else e for e in extra]
    message = failure(train_simclr.main, tiny_args(synthetic_root, tmp_path / "runs", *extra), capsys)
    assert expected in message, message
    assert not (tmp_path / "runs").exists()


def test_an_undecodable_image_is_named_even_from_a_worker(tmp_path):
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "good.png")
    (tmp_path / "bad.png").write_bytes(b"not an image at all")
    ds = ImageFilesDataset(tmp_path, ["good.png", "bad.png"], np.zeros(2, np.int64))
    for workers in (0, 1):
        with pytest.raises(ImageDecodeError) as e:
            list(DataLoader(ds, batch_size=1, num_workers=workers))
        message = decode_error_message(e.value)
        assert message.startswith(f"cannot decode image {tmp_path / 'bad.png'}") and "\n" not in message


def test_an_undecodable_image_in_training_is_one_line(tmp_path):
    root, _ = image_list_with_a_bad_image(tmp_path, 8, bad=5, prefix="img", list_name="train.txt")
    result = run_cli("--dataset", "imagenet100", "--data", str(root), "--trainSplit", str(tmp_path / "train.txt"),
                     "--save-dir", str(tmp_path / "runs"), "--width", "4", "--batch_size", "4", "--epochs", "1",
                     "--num_workers", "1", "--device", "cpu")
    last = result.stderr.strip().splitlines()[-1].split("\r")[-1]  # after the progress bar's clearing
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert last.startswith(f"error: cannot decode image {root / 'img5.png'}")


# 7. Probes ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def two_encoders(synthetic_root, tmp_path_factory):
    save_dir = tmp_path_factory.mktemp("encoders")
    paths = []
    for width in ("4", "8"):
        argv = tiny_args(synthetic_root, save_dir, "--epochs", "1", "--width", width)
        paths.append(train_simclr.main([f"w{width}", *argv[1:]]) / "model.pt")
    return paths


def probe(checkpoint, save_dir, root, *extra):
    return ["p", "--checkpoint", str(checkpoint), "--data", str(root), "--save-dir", str(save_dir), "--epochs", "1",
            "--lr", "0.1", "--num_workers", "0", "--device", "cpu", "--batch_size", "64", "--cached_features", *extra]


@pytest.mark.parametrize("extra,expected", [
    (["--epochs", "0"], "--epochs must be positive, got 0"),
    (["--batch_size", "0"], "--batch_size must be positive, got 0"),
    (["--lr", "nan"], "--lr must be a finite number > 0, got nan"),
])
def test_bad_probe_settings_are_one_line(tmp_path, capsys, extra, expected):
    message = failure(train_linear.main, probe(tmp_path / "model.pt", tmp_path / "probes", tmp_path, *extra), capsys)
    assert expected in message and not (tmp_path / "probes").exists()


def test_probe_overwrite_and_test_only_keep_results(two_encoders, synthetic_root, tmp_path, capsys):
    small, wide = two_encoders
    run_dir = train_linear.main(probe(small, tmp_path, synthetic_root))
    before = checksums(run_dir)
    message = failure(train_linear.main, probe(small, tmp_path, synthetic_root, "--overwrite", "--lr", "1e30"),
                      capsys)
    assert message.startswith("error: non-finite probe loss at epoch 1")
    assert checksums(run_dir) == before and siblings(run_dir) == []
    message = failure(train_linear.main, probe(wide, tmp_path, synthetic_root, "--test_only"), capsys)
    assert message.startswith(f"error: probe {run_dir / 'probe.pt'} was trained on an encoder of width 4; "
                              f"--checkpoint {wide} is a width-8 encoder")
    train_linear.main(probe(small, tmp_path, synthetic_root, "--overwrite", "--seed", "3"))
    assert siblings(run_dir) == [] and json.loads((run_dir / "results.json").read_text())["method"]


# 8. report.py ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("content,expected", [
    ("[1, 2]", "not a results.json (expected an object of metrics, got list)"),
    ('{"all": "high"}', "'all' must be a number, got 'high'"),
    ('{"method": "x"}', "none of the metrics"),
    ('{"all": 1, "per_class": [1, 2], "class_counts": [3]}', "must be lists of the same length"),
])
def test_report_refuses_a_wrong_results_json(tmp_path, capsys, content, expected):
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "results.json").write_text(content)
    assert report.main([str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and expected in err and "\n" not in err
    assert not (tmp_path / "out").exists()


def test_report_out_naming_a_file(tmp_path, capsys):
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "results.json").write_text('{"all": 50.0}')
    (tmp_path / "table").write_text("mine")
    for out in (tmp_path / "table", tmp_path / "table" / "sub"):
        assert report.main([str(tmp_path / "p"), "--out", str(out)]) == 2
        assert f"{tmp_path / 'table'} is a file" in capsys.readouterr().err
    assert (tmp_path / "table").read_text() == "mine"


def test_report_skips_probes_moved_aside(tmp_path):
    for name in ("p", ".p.old-1"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text('{"all": 50.0, "method": "m"}')
    assert len(report.collect_results([tmp_path])) == 1


# 9. Launchers ------------------------------------------------------------------------------------------

def test_a_one_process_launch_fails_with_the_projects_line(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable}
    result = subprocess.run(["bash", str(REPO_ROOT / "cmds/shell_scrips/cifar-10-LT_extra.sh"), "-g", "1",
                             "--data", str(tmp_path / "nowhere"), "--runs_dir", str(tmp_path / "runs")],
                            capture_output=True, text=True, cwd=REPO_ROOT, env=env, timeout=120)
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and lines[-1].startswith("error: ") and len(lines) == 1, result.stderr
    assert "ChildFailedError" not in result.stderr and "torch.distributed" not in result.stdout

