"""train_linear.py / train_fewshot.py on hostile input: checkpoints and probe files of the right name and the
wrong content, names that collide with other outputs, read-only and full file systems, kills during
--overwrite and during the last writes, bad images and settings."""
import contextlib
import json

import pytest
import torch

from tests.hostile import (assert_refused, check, checkpoint_variants, checksums, fill_disk,
                           image_list_with_a_bad_image, nobody_env, read_only, small_disk, tree, unreadable)


@pytest.fixture(scope="module")
def variants(hostile_world):
    return checkpoint_variants(hostile_world.checkpoint, hostile_world.case_dir("checkpoints"))


def probe(world, entry, save_dir, name="p", *extra, checkpoint=None, **kwargs):
    return world.run_case(entry, world.probe_argv(save_dir, name, *extra, checkpoint=checkpoint), **kwargs)


# the few-shot script shares the linear probe's code: a few of its cases suffice
@pytest.mark.parametrize("entry,case", [
    *(("train_linear", c) for c in ("bare_tensor", "list", "int_for_tensor", "nan_weights", "wrong_shape", "unsafe",
                                    "truncated", "text", "args_not_dict")),
    *(("train_fewshot", c) for c in ("bare_tensor", "unsafe", "nan_weights"))])
def test_a_wrong_checkpoint_is_one_line(hostile_world, variants, entry, case):
    path, pattern = variants[case]
    folder = hostile_world.case_dir(case)
    line = assert_refused(probe(hostile_world, entry, folder, checkpoint=path), pattern)
    assert str(path) in line and tree(folder) == []


@pytest.mark.parametrize("case", ["missing", "folder", "unreadable"])
def test_a_checkpoint_that_cannot_be_read(hostile_world, case):
    world = hostile_world
    folder = world.case_dir(case)
    path = {"missing": folder / "nowhere.pt", "folder": world.run,
            "unreadable": world.copy(world.checkpoint, folder)}[case]
    with unreadable(path) if case == "unreadable" else contextlib.nullcontext() as uid:
        refused = probe(world, "train_linear", folder / "out", checkpoint=path, uid=uid, env=nobody_env(world))
    pattern = {"missing": r"checkpoint not found", "folder": r"is a folder: name the checkpoint file",
               "unreadable": r"cannot read checkpoint .*permission denied"}[case]
    assert_refused(refused, pattern)
    assert not (folder / "out").exists()


def saved_probe(world, folder, content):
    """A copy of the finished probe whose probe.pt holds ``content`` (None: removed)."""
    target = world.copy(world.probe, folder)
    if content is None:
        (target / "probe.pt").unlink()
    else:
        torch.save(content, target / "probe.pt")
    return target


PROBE_FILES = {
    "tensor": r"is not a probe of this project \(expected a dict with 'head' and 'encoder', found Tensor\)",
    "list": r"is not a probe of this project",
    "no_encoder": r"encoder must be a dict of named tensors, found NoneType",
    "head_of_other_features": r"reads 8-d features; --checkpoint .* gives 32-d features",
    "nan_head": r"head tensor\(s\) hold NaN",
    "missing": r"checkpoint not found: .*probe.pt",
}


@pytest.mark.parametrize("entry,case", [*(("train_linear", c) for c in PROBE_FILES),
                                        ("train_fewshot", "tensor"), ("train_fewshot", "head_of_other_features")])
def test_test_only_with_a_wrong_probe_file(hostile_world, entry, case):
    pattern = PROBE_FILES[case]
    world = hostile_world
    folder = world.case_dir(f"test_only_{case}")
    good = torch.load(world.probe / "probe.pt", weights_only=True)
    content = {"tensor": torch.zeros(2), "list": [good], "no_encoder": {"head": good["head"]},
               "head_of_other_features": {**good, "head": {"weight": torch.zeros(10, 8), "bias": torch.zeros(10)}},
               "nan_head": {**good, "head": {"weight": good["head"]["weight"] * float("nan"),
                                             "bias": good["head"]["bias"]}},
               "missing": None}[case]
    target = saved_probe(world, folder, content)
    before = checksums(target)
    refused = probe(world, entry, folder, "p", "--test_only")
    assert_refused(refused, pattern)
    assert checksums(target) == before


# ---- the file system ----------------------------------------------------------------------------------

def test_save_dir_or_probe_folder_is_a_file(hostile_world):
    world = hostile_world
    folder = world.case_dir("files")
    (folder / "file").write_text("mine")
    assert_refused(probe(world, "train_linear", folder / "file"), r"--save-dir .*file is a file")
    assert_refused(probe(world, "train_linear", folder, "file", "--overwrite"), r"file is a file, not a folder")
    assert (folder / "file").read_text() == "mine"


def test_a_read_only_save_dir(hostile_world):
    world = hostile_world
    folder = world.case_dir("read_only")
    (folder / "probes").mkdir()
    with read_only(world, folder / "probes"):
        refused = probe(world, "train_linear", folder / "probes")
    assert_refused(refused, r"read-only file system")
    assert tree(folder / "probes") == []


def test_a_full_disk_during_overwrite_keeps_the_old_probe(hostile_world):
    world = hostile_world
    folder = world.case_dir("full_disk")
    with small_disk(world, folder / "probes", 1) as probes:
        old = world.copy(world.probe, probes)
        before = checksums(old)
        fill_disk(probes, 60 * 1024)  # room for the logs, not for probe.pt
        refused = probe(world, "train_linear", probes, "p", "--overwrite", "--seed", "4")
        assert_refused(refused, r"cannot write .*probe.pt: no space left on device.*; the p it was to replace is "
                                r"back in")
        assert checksums(old) == before and sorted(p.name for p in probes.iterdir()) == [".filler", "p"]


# ---- names that collide -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", [".", "..", ".hidden", "a/b", ""])
def test_names_that_are_not_one_folder(hostile_world, name):
    world = hostile_world
    folder = world.case_dir("names")
    world.copy(world.probe, folder)
    before = checksums(folder)
    refused = probe(world, "train_linear", folder, name, "--overwrite")
    assert_refused(refused, r"the probe name .* is not a plain folder name", code=2)
    assert checksums(folder) == before


def test_a_method_name_that_is_a_path(hostile_world):
    folder = hostile_world.case_dir("method")
    refused = probe(hostile_world, "train_linear", folder, "p", "--method", "../x")
    assert_refused(refused, r"--method '../x' is not a plain folder name", code=2)
    assert tree(folder) == []


@pytest.mark.parametrize("case", ["pretraining_run", "pretraining_run_overwrite", "inference_output",
                                  "save_dir_is_a_run", "folder_of_outputs"])
def test_outputs_of_other_kinds_are_never_written_into(hostile_world, case):
    world = hostile_world
    folder = world.case_dir(case)
    if case.startswith("pretraining_run"):
        world.copy(world.run, folder)
        extra = (["--overwrite"] if case.endswith("overwrite") else [])
        refused = probe(world, "train_linear", folder, "base", *extra)
        pattern = r"holds a pre-training run, not a probe"
    elif case == "inference_output":
        world.copy(world.infer / "pool_noaug", folder)
        refused = probe(world, "train_linear", folder, "pool_noaug", "--overwrite")
        pattern = r"holds an inference output, not a probe"
    elif case == "save_dir_is_a_run":
        world.copy(world.run, folder)
        refused = probe(world, "train_linear", folder / "base", "p")
        pattern = r"--save-dir .* is itself a pre-training run"
    else:
        (folder / "probes").mkdir()
        world.copy(world.probe, folder / "probes")
        refused = probe(world, "train_linear", folder, "probes", "--overwrite")
        pattern = r"holds other outputs \(p \(a probe\)\)"
    before = checksums(folder)
    assert_refused(refused, pattern)
    assert checksums(folder) == before


# ---- interrupted writes --------------------------------------------------------------------------------

def test_a_kill_during_overwrite_gives_the_old_probe_back(hostile_world):
    world = hostile_world
    folder = world.case_dir("kill_overwrite")
    old = world.copy(world.probe, folder)
    before = checksums(old)
    killed = probe(world, "train_linear", folder, "p", "--overwrite", "--seed", "5",
                   fault={"call": "rename", "match": ".p.old-*"})
    assert killed.returncode == -9 and len(list(folder.glob(".p.old-*"))) == 1
    again = probe(world, "train_linear", folder, "p")
    assert_refused(again, r"probe directory .* already holds results")
    assert "interrupted --overwrite had moved the earlier p" in again.stdout
    assert checksums(old) == before and not list(folder.glob(".p.old-*"))


@pytest.mark.parametrize("moment", ["results_json_half_written", "after_probe_pt"])
def test_a_kill_before_the_results_leaves_a_probe_that_starts_again(hostile_world, moment):
    world = hostile_world
    folder = world.case_dir(moment)
    fault = {"call": "fsync", "match": ".results.json.*.tmp"} if moment == "results_json_half_written" else \
        {"call": "replace", "match": "probe.pt"}
    assert probe(world, "train_linear", folder, fault=fault).returncode == -9
    assert not (folder / "p" / "results.json").exists()
    check(probe(world, "train_linear", folder), 0)  # no --overwrite needed: it never finished
    assert json.loads((folder / "p" / "results.json").read_text())["method"] == "base"
    assert not list((folder / "p").glob(".*.tmp"))


def test_a_nan_loss_during_overwrite_keeps_the_old_probe(hostile_world):
    world = hostile_world
    folder = world.case_dir("nan_loss")
    old = world.copy(world.probe, folder)
    before = checksums(old)
    refused = probe(world, "train_linear", folder, "p", "--overwrite", "--lr", "1e30")
    assert_refused(refused, r"non-finite probe loss at epoch 1")
    assert checksums(old) == before and sorted(p.name for p in folder.iterdir()) == ["p"]


# ---- images, data and settings --------------------------------------------------------------------------

def test_an_undecodable_image_is_named(hostile_world):
    world = hostile_world
    folder = world.case_dir("bad_image")
    root, listing = image_list_with_a_bad_image(folder, 6, bad=4)
    refused = world.run_case("train_linear", [
        "p", "--checkpoint", world.imagenet_checkpoint, "--dataset", "imagenet100", "--data", root,
        "--trainSplit", listing, "--valSplit", listing, "--testSplit", listing, "--pretrain_split", listing,
        "--save-dir", folder / "probes", "--epochs", "1", "--num_workers", "0", "--device", "cpu",
        "--batch_size", "2", "--cached_features"])
    assert_refused(refused, rf"cannot decode image {root / '4.png'}")
    assert not (folder / "probes" / "p" / "results.json").exists()


@pytest.mark.parametrize("case,pattern", [
    ("synthetic_split_typo", r"synthetic probe split must be one of full, few, val, got 'fulll'"),
    ("cifar_data_missing", r"--data .*nowhere: folder not found"),
    ("unknown_dataset", r"unknown dataset 'cifar1000'"),
    ("image_list_required", r"split 'imageNet_100_\w+' not found.*released image lists"),
    ("empty_image_list", r"no images listed"),
    ("lr_nan", r"--lr must be a finite number > 0, got nan"),
    ("print_freq_zero", r"--print_freq must be positive"),
    ("cuda", r"--device cuda: no CUDA device"),
])
def test_bad_data_and_settings(hostile_world, case, pattern):
    world = hostile_world
    folder = world.case_dir(case)
    (folder / "empty.txt").write_text("")
    extra = {"synthetic_split_typo": ["--trainSplit", "fulll"],
             "cifar_data_missing": ["--dataset", "cifar10", "--data", str(folder / "nowhere")],
             "unknown_dataset": ["--dataset", "cifar1000"],
             "image_list_required": ["--dataset", "imagenet100", "--data", str(folder)],
             "empty_image_list": ["--dataset", "imagenet100", "--data", str(folder), "--trainSplit",
                                  str(folder / "empty.txt"), "--valSplit", str(folder / "empty.txt"),
                                  "--testSplit", str(folder / "empty.txt")],
             "lr_nan": ["--lr", "nan"], "print_freq_zero": ["--print_freq", "0"],
             "cuda": ["--device", "cuda"]}[case]
    if case == "cuda" and torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the refusal is for machines without one")
    refused = probe(world, "train_linear", folder / "probes", "p", *extra)
    assert_refused(refused, pattern)
    assert not (folder / "probes").exists()


def test_the_log_is_short_and_explains_lr_30(hostile_world):
    """Not hostile, but what a new user met: a 12-epoch probe at lr 30 logs 3 epoch lines, explains the loss
    scale once, and mentions no probe set aside when none was."""
    world = hostile_world
    folder = world.case_dir("log")
    check(probe(world, "train_linear", folder, "p", "--epochs", "12", "--lr", "30"), 0)
    log = (folder / "p" / "log.txt").read_text()
    assert [line.split(" probe epoch ")[1].split()[0] for line in log.splitlines() if " probe epoch " in line] == \
        ["1/12", "10/12", "12/12"]
    assert log.count("values in the hundreds or thousands are normal") == 1 and "kept" not in log
