"""train_simclr.py on hostile input: the file system (files where folders belong, unreadable, read-only,
full), checkpoints of the right name and the wrong content, names that collide with other outputs, inputs
that change under a --resume, bad images, kills in the middle of writes, and bad settings."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

from tests.hostile import (assert_refused, check, checkpoint_variants, checksums, fill_disk,
                           image_list_with_a_bad_image, nobody_env, read_only, small_disk, tree, unreadable)


def pretrain(world, save_dir, name="run", *extra, **kwargs):
    return world.run_case("train_simclr", world.pretrain_argv(save_dir, name, *extra), **kwargs)


# ---- the file system ----------------------------------------------------------------------------------

@pytest.mark.parametrize("case,pattern", [
    ("data_is_a_file", r"--data .*file is a file: it must name the folder that holds the synthetic data cache"),
    ("save_dir_is_a_file", r"--save-dir .*file is a file, not a folder"),
    ("save_dir_under_a_file", r"file is a file, not a folder"),
    ("run_dir_is_a_file", r"run is a file, not a folder"),
    ("split_is_a_folder", r"split .* not found: it is not a file"),
])
def test_files_where_folders_belong(hostile_world, case, pattern):
    world = hostile_world
    folder = world.case_dir(case)
    (folder / "file").write_text("mine")
    (folder / "runs").mkdir()
    (folder / "runs" / "run").write_text("mine")
    save_dir, extra = folder / "runs", []
    if case == "data_is_a_file":
        extra = ["--data", folder / "file"]
    elif case == "save_dir_is_a_file":
        save_dir = folder / "file"
    elif case == "save_dir_under_a_file":
        save_dir = folder / "file" / "runs"
    elif case == "run_dir_is_a_file":
        extra = ["--overwrite"]
    else:
        extra = ["--trainSplit", folder / "runs"]
        save_dir = folder / "other"
    before = checksums(folder)
    assert_refused(pretrain(world, save_dir, "run", *extra), pattern)
    assert checksums(folder) == before and tree(folder) == ["file", "runs", "runs/run"]


@pytest.mark.parametrize("what", ["split", "synthetic_cache", "ood_pool"])
def test_an_unreadable_input(hostile_world, what):
    world = hostile_world
    folder = world.case_dir(f"unreadable_{what}")
    extra = []
    if what == "split":
        target = world.copy(world.split, folder)
        extra = ["--trainSplit", target]
    elif what == "synthetic_cache":
        data = world.copy(world.synthetic, folder)
        target = next(data.glob("*.npz"))
        extra = ["--data", data]
    else:
        target = world.copy(world.pool, folder)
        extra = ["--COLT", "--sample_set", "300K_random_images", "--ood_data", target, "--budget", "4"]
    with unreadable(target) as uid:
        refused = pretrain(world, folder / "runs", "run", *extra, uid=uid, env=nobody_env(world))
    assert_refused(refused, rf"{target.name}.*(permission denied|Permission denied)")
    assert not (folder / "runs").exists()


def test_a_save_dir_this_user_cannot_write(hostile_world):
    world = hostile_world
    if os.geteuid() != 0:
        pytest.skip("needs root, to run the case as another user than the folder's owner")
    folder = world.case_dir("not_writable")
    (folder / "runs").mkdir()
    (folder / "runs").chmod(0o755)
    refused = pretrain(world, folder / "runs", uid=65534, env=nobody_env(world))
    assert_refused(refused, r"is not writable by this user \(permission denied\)")
    assert tree(folder / "runs") == []


@pytest.mark.parametrize("case", ["new_run", "resume", "synthetic_cache"])
def test_a_read_only_file_system(hostile_world, case):
    world = hostile_world
    folder = world.case_dir(f"read_only_{case}")
    (folder / "runs").mkdir()
    if case == "resume":
        run = world.copy(world.run, folder / "runs")
        before = checksums(run)
        with read_only(world, folder / "runs"):
            refused = pretrain(world, folder / "runs", "base", "--resume", "--epochs", "2", "--extend_epochs")
        assert_refused(refused, r"read-only file system")
        assert checksums(run) == before
    elif case == "new_run":
        with read_only(world, folder / "runs"):
            refused = pretrain(world, folder / "runs")
        assert_refused(refused, r"read-only file system: choose a writable folder")
    else:
        (folder / "cache").mkdir()
        with read_only(world, folder / "cache"):
            refused = pretrain(world, folder / "runs", "run", "--data", folder / "cache")
        assert_refused(refused, r"cannot write .*synthetic_v\d+_seed0.npz: read-only file system.*point --data "
                                r"\(or LTSSL_DATA\) at a writable folder")
        assert tree(folder / "cache") == []
    assert tree(folder / "runs") == ([] if case != "resume" else tree(folder / "runs"))


def test_a_full_disk_at_a_checkpoint_keeps_the_last_one(hostile_world):
    world = hostile_world
    folder = world.case_dir("full_disk")
    with small_disk(world, folder / "runs", 2) as runs:
        run = world.copy(world.run, runs)
        before = checksums(run / "model.pt")
        fill_disk(runs, 200 * 1024)  # room for the logs, not for another checkpoint
        refused = pretrain(world, runs, "base", "--resume", "--epochs", "2", "--extend_epochs")
        assert_refused(refused, r"cannot write .*model(_2)?.pt: no space left on device.*; the earlier|nothing was")
        assert checksums(run / "model.pt") == before and not list(run.glob(".*.tmp"))
        assert torch.load(run / "model.pt", weights_only=True)["epoch"] == 1


def test_a_full_disk_during_overwrite_keeps_the_old_run(hostile_world):
    world = hostile_world
    folder = world.case_dir("full_disk_overwrite")
    with small_disk(world, folder / "runs", 2) as runs:
        run = world.copy(world.run, runs)
        before = checksums(run)
        fill_disk(runs, 200 * 1024)
        refused = pretrain(world, runs, "base", "--overwrite", "--seed", "3")
        assert_refused(refused, r"no space left on device.*; the run it was to replace is back in")
        assert checksums(run) == before and sorted(p.name for p in runs.iterdir()) == [".filler", "base"]


# ---- checkpoints of the right name and the wrong content ---------------------------------------------

@pytest.fixture(scope="module")
def variants(hostile_world):
    out = checkpoint_variants(hostile_world.checkpoint, hostile_world.case_dir("checkpoints"))
    state = torch.load(hostile_world.checkpoint, weights_only=True)
    folder = hostile_world.case_dir("training_states")
    for name, value, pattern in [
        ("no_optimizer", {k: v for k, v in state.items() if k != "optimizer"}, r"\(no optimizer\)"),
        ("epoch_is_text", {**state, "epoch": "1"}, r"'epoch' must be a whole number >= 0, found '1'"),
        ("no_rng_state", {**state, "rng": {}}, r"'rng' lacks the python / numpy / torch generator states"),
        ("optimizer_is_a_list", {**state, "optimizer": [1]}, r"'optimizer' must be a dict, found a list"),
    ]:
        path = folder / name / "model.pt"
        path.parent.mkdir()
        torch.save(value, path)
        out[name] = (path, pattern)
    return out


RESUME_PATTERNS = {
    "bare_tensor": r"not a pre-training checkpoint of this project \(it holds a Tensor",
    "list": r"not a pre-training checkpoint of this project \(it holds a list",
    "no_head": r"is not a pre-training checkpoint of this project \(no epoch, optimizer, scheduler, rng\)",
    "wrong_shape": r"does not fit this run's .*layer2.0.conv1.weight",
}


@pytest.mark.parametrize("case", ["bare_tensor", "list", "int_for_tensor", "nan_weights", "wrong_shape", "unsafe",
                                  "truncated", "text", "no_head", "args_not_dict", "no_optimizer", "epoch_is_text",
                                  "no_rng_state", "optimizer_is_a_list"])
def test_resume_from_a_wrong_checkpoint_is_one_line(hostile_world, variants, case):
    world = hostile_world
    folder = world.case_dir(f"resume_{case}")
    run = world.copy(world.run, folder)
    path, pattern = variants[case]
    (run / "model.pt").write_bytes(path.read_bytes())
    before = checksums(run)
    refused = pretrain(world, folder, "base", "--resume", "--epochs", "2", "--extend_epochs")
    line = assert_refused(refused, RESUME_PATTERNS.get(case, pattern))
    assert "model.pt" in line and checksums(run) == before


@pytest.mark.parametrize("case,pattern", [
    ("folder", r"checkpoint .* is a folder: name the checkpoint file in it"),
    ("missing", r"checkpoint not found: .*nowhere.pt"),
    ("another_width", r"was trained with --model res18 --width 4 --output_ch 128; this run builds --model res18 "
                      r"--width 8"),
])
def test_resume_from_another_checkpoint_file(hostile_world, case, pattern):
    world = hostile_world
    folder = world.case_dir(f"checkpoint_{case}")
    checkpoint = {"folder": world.run, "missing": folder / "nowhere.pt", "another_width": world.checkpoint}[case]
    extra = ["--width", "8"] if case == "another_width" else []
    refused = pretrain(world, folder / "runs", "run", "--resume", "--checkpoint", checkpoint, *extra)
    assert_refused(refused, pattern)
    assert not (folder / "runs" / "run").exists()


# ---- names that collide -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", [".", "..", ".hidden", "a/b", "../escape", "base/"])
def test_names_that_are_not_one_folder(hostile_world, name):
    world = hostile_world
    folder = world.case_dir("names")
    world.copy(world.run, folder)
    before = checksums(folder)
    refused = pretrain(world, folder, name, "--overwrite")
    assert_refused(refused, r"is not a plain folder name", code=2)
    assert checksums(folder) == before


@pytest.mark.parametrize("case", ["inference_output", "probe", "split_folder", "folder_of_runs", "save_dir_is_a_run",
                                  "symlink_to_the_save_dir"])
def test_other_outputs_are_never_written_into_or_deleted(hostile_world, case):
    world = hostile_world
    folder = world.case_dir(case)
    save_dir, name = folder, case
    if case == "inference_output":
        world.copy(world.infer / "pool_noaug", folder)
        name = "pool_noaug"
    elif case == "probe":
        world.copy(world.probe, folder)
        name = "p"
    elif case == "split_folder":
        (folder / "splits").mkdir()
        (folder / "splits" / ".ltssl-output.json").write_text('{"kind": "splits"}')
        np.save(folder / "splits" / "split1_D_i.npy", np.arange(5))
        name = "splits"
    elif case == "folder_of_runs":
        (folder / "runs").mkdir()
        world.copy(world.run, folder / "runs")
        name = "runs"
    elif case == "save_dir_is_a_run":
        world.copy(world.run, folder)
        save_dir, name = folder / "base", "run"
    else:
        world.copy(world.run, folder)
        os.symlink(folder, folder / "loop")
        name = "loop"
    before = checksums(folder)
    refused = pretrain(world, save_dir, name, "--overwrite")
    assert_refused(refused, r"holds (an inference output|a probe|a folder of splits|other outputs)|is itself a "
                            r"pre-training run|resolves to")
    assert checksums(folder) == before


# ---- inputs that change under a resume ---------------------------------------------------------------

def changed_input_run(world, folder, what):
    """A finished 1-epoch run that read one input file (a copy in ``folder``), and that file."""
    if what == "trainSplit":
        split = world.copy(world.split, folder)
        extra, changed = ["--trainSplit", split], split
    elif what == "additional_split":
        chosen = folder / "chosen.npy"
        np.save(chosen, np.arange(8, dtype=np.int64))
        extra = ["--additional_dataset", "300K_random_images", "--additional_data", world.pool,
                 "--additional_split", chosen]
        changed = chosen
    else:
        pool = world.copy(world.pool, folder)
        extra = ["--COLT", "--sample_set", "300K_random_images", "--ood_data", pool, "--budget", "4",
                 "--warmup", "5"]
        changed = pool
    check(pretrain(world, folder / "runs", "run", *extra), 0)
    return extra, changed


@pytest.mark.parametrize("what", ["trainSplit", "additional_split", "ood_data"])
def test_a_resume_on_changed_inputs_is_refused(hostile_world, what):
    world = hostile_world
    folder = world.case_dir(f"changed_{what}")
    extra, changed = changed_input_run(world, folder, what)
    run = folder / "runs" / "run"
    before = checksums(run)
    if what == "trainSplit":
        np.save(changed, np.arange(1, 1601, 16, dtype=np.int64))  # same size, other images
    elif what == "additional_split":
        np.save(changed, np.arange(8, 16, dtype=np.int64))
    else:
        pool = np.load(changed)
        np.save(changed, 255 - pool)
    refused = pretrain(world, folder / "runs", "run", *extra, "--resume", "--epochs", "2", "--extend_epochs")
    assert_refused(refused, rf"--resume: the inputs of .*model.pt changed: --{what} .*changed since the run "
                            rf"started")
    assert checksums(run) == before


# ---- bad images ---------------------------------------------------------------------------------------

def test_an_undecodable_first_pool_image_is_named(hostile_world):
    world = hostile_world
    folder = world.case_dir("bad_pool_image")
    images = folder / "pool"
    images.mkdir()
    (images / "0.png").write_bytes(b"broken")
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(images / "1.png")
    refused = pretrain(world, folder / "runs", "run", "--COLT", "--sample_set", "folder", "--ood_data", images,
                       "--budget", "1")
    assert_refused(refused, rf"cannot decode image {images / '0.png'}")
    assert not (folder / "runs").exists()


def test_an_undecodable_training_image_is_named(hostile_world):
    world = hostile_world
    folder = world.case_dir("bad_training_image")
    root, _ = image_list_with_a_bad_image(folder, 8, bad=5, prefix="img", list_name="train.txt")
    refused = world.run_case("train_simclr", ["run", "--dataset", "imagenet100", "--data", root, "--trainSplit",
                                              folder / "train.txt", "--save-dir", folder / "runs", "--width", "2",
                                              "--batch_size", "4", "--epochs", "1", "--num_workers", "0",
                                              "--device", "cpu"])
    assert_refused(refused, rf"cannot decode image {root / 'img5.png'}")
    assert not (folder / "runs" / "run" / "model.pt").exists()


# ---- interrupted writes -------------------------------------------------------------------------------

@pytest.mark.parametrize("then", ["plain_start", "resume", "overwrite_again"])
def test_a_kill_during_overwrite_gives_the_old_run_back(hostile_world, then):
    world = hostile_world
    folder = world.case_dir(f"kill_overwrite_{then}")
    run = world.copy(world.run, folder)
    before = checksums(run)
    killed = pretrain(world, folder, "base", "--overwrite", "--seed", "9", fault={"call": "rename",
                                                                                "match": ".base.old-*"})
    assert killed.returncode == -9 and len(list(folder.glob(".base.old-*"))) == 1
    extra = {"plain_start": [], "resume": ["--resume"], "overwrite_again": ["--overwrite", "--seed", "9"]}[then]
    again = pretrain(world, folder, "base", *extra)
    assert "an interrupted --overwrite had moved the earlier base" in again.stdout
    assert not list(folder.glob(".base.old-*"))
    if then == "plain_start":
        assert_refused(again, r"already holds a run: use --resume to continue it")
        assert checksums(run) == before
    elif then == "resume":
        check(again, 0)
        assert checksums(run / "model.pt") == {k: v for k, v in before.items() if k.endswith("/model.pt")}
    else:
        check(again, 0)
        assert torch.load(run / "model.pt", weights_only=True)["args"]["seed"] == 9


def test_a_kill_after_the_new_runs_first_checkpoint_says_where_the_old_one_is(hostile_world):
    world = hostile_world
    folder = world.case_dir("kill_after_first_checkpoint")
    world.copy(world.run, folder)
    killed = pretrain(world, folder, "base", "--overwrite", "--seed", "9",
                      fault={"call": "replace", "match": "model.pt"})
    assert killed.returncode == -9
    aside = list(folder.glob(".base.old-*"))
    assert len(aside) == 1
    again = pretrain(world, folder, "base")
    assert_refused(again, r"already holds a run")
    assert f"restore it with: rm -r {folder / 'base'} && mv {aside[0]} {folder / 'base'}" in again.stdout
    assert aside[0].is_dir()


def test_a_kill_in_the_middle_of_a_checkpoint_resumes_exactly(hostile_world):
    world = hostile_world
    folder = world.case_dir("kill_mid_checkpoint")
    check(pretrain(world, folder / "straight", "run", "--epochs", "2"), 0)
    killed = pretrain(world, folder / "killed", "run", "--epochs", "2",
                      fault={"call": "fsync", "match": ".model.pt.*.tmp", "nth": 2})
    assert killed.returncode == -9
    run = folder / "killed" / "run"
    assert torch.load(run / "model.pt", weights_only=True)["epoch"] == 1 and list(run.glob(".model.pt.*.tmp"))
    check(pretrain(world, folder / "killed", "run", "--epochs", "2", "--resume"), 0)
    assert not list(run.glob(".*.tmp"))
    a = torch.load(folder / "straight" / "run" / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(run / "model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_kill_right_after_model_pt_never_loses_the_snapshot(hostile_world):
    world = hostile_world
    folder = world.case_dir("kill_after_model_pt")
    killed = pretrain(world, folder, "run", "--epochs", "3", "--save_freq", "2",
                      fault={"call": "replace", "match": "model.pt", "nth": 2})
    assert killed.returncode == -9
    run = folder / "run"
    assert torch.load(run / "model_2.pt", weights_only=True)["epoch"] == 2
    check(pretrain(world, folder, "run", "--epochs", "3", "--save_freq", "2", "--resume"), 0)
    assert {p.name for p in run.glob("model*.pt")} == {"model.pt", "model_2.pt", "model_3.pt"}


def test_a_kill_while_writing_args_json_starts_again(hostile_world):
    world = hostile_world
    folder = world.case_dir("kill_args_json")
    killed = pretrain(world, folder, fault={"call": "fsync", "match": ".args.json.*.tmp"})
    assert killed.returncode == -9 and not (folder / "run" / "model.pt").exists()
    again = pretrain(world, folder)
    check(again, 0)
    assert "held no checkpoint" in (folder / "run" / "log.txt").read_text() or "starting" in again.stdout
    assert not list((folder / "run").glob(".*.tmp"))


# ---- settings and data --------------------------------------------------------------------------------

@pytest.mark.parametrize("case,extra,pattern", [
    ("unknown_dataset", ["--dataset", "cifar1000"], r"^error: unknown dataset 'cifar1000'"),
    ("empty_split", ["--trainSplit", "EMPTY"], r"batch|holds no|empty|0 images"),
    ("synthetic_split_typo", ["--trainSplit", "lt_splt"], r"a synthetic split is an index .npy file"),
    ("cifar_data_missing", ["--dataset", "cifar10", "--data", "NOWHERE", "--trainSplit", "split1_D_i"],
     r"--data .*nowhere: folder not found"),
    ("missing_additional_split", ["--additional_dataset", "300K_random_images", "--additional_data", "POOL",
                                  "--additional_split", "NOWHERE"], r"not found"),
    ("resume_without_a_run", ["--resume"], r"--resume: nothing to continue in .* \(no run started there\)"),
    ("checkpoint_without_resume", ["--checkpoint", "x.pt"], r"--checkpoint names the checkpoint to resume from"),
    ("lr_nan", ["--lr", "nan"], r"--lr must be a finite number > 0, got nan"),
    ("cuda", ["--device", "cuda"], r"--device cuda: no CUDA device"),
])
def test_bad_settings_and_data_are_one_line(hostile_world, case, extra, pattern):
    world = hostile_world
    if case == "cuda" and torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the refusal is for machines without one")
    folder = world.case_dir(case)
    np.save(folder / "empty.npy", np.zeros(0, np.int64))
    extra = [str({"EMPTY": folder / "empty.npy", "NOWHERE": folder / "nowhere", "POOL": world.pool}.get(e, e))
             for e in extra]
    refused = pretrain(world, folder / "runs", "run", *extra)
    assert_refused(refused, pattern)
    assert not (folder / "runs").exists()


def test_resume_with_changed_settings_touches_nothing(hostile_world):
    world = hostile_world
    folder = world.case_dir("changed_settings")
    run = world.copy(world.run, folder)
    before = checksums(run)
    refused = pretrain(world, folder, "base", "--resume", "--lr", "0.1")
    assert_refused(refused, r"--resume: these settings differ from the run's: --lr 0.1 \(run: 0.5\)")
    assert checksums(run) == before
