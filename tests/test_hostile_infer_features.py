"""infer_features.py on hostile input: checkpoints of the right name and the wrong content, bad datasets and
images, names that collide with other outputs, read-only and full file systems, kills in the middle of
writes, and outputs that look finished and are not."""
import contextlib
import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from tests.hostile import (assert_refused, check, checkpoint_variants, checksums, fill_disk, nobody_env, read_only,
                           small_disk, tree, unreadable)
from utils.feature_store import FeatureStore


def store_arrays(folder) -> dict:
    out = {}
    for path in sorted(folder.glob("r*_c*.npz")):
        with np.load(path) as z:
            out[path.name] = {k: z[k] for k in z.files}
    return out


def assert_same_store(a, b) -> None:
    first, second = store_arrays(a), store_arrays(b)
    assert first.keys() == second.keys() and first
    for name in first:
        for kind in ("proj", "feat"):
            if kind in first[name]:
                np.testing.assert_array_equal(first[name][kind], second[name][kind], err_msg=f"{name} {kind}")


@pytest.fixture(scope="module")
def variants(hostile_world):
    return checkpoint_variants(hostile_world.checkpoint, hostile_world.case_dir("checkpoints"))


VARIANTS = ["bare_tensor", "list", "int_for_tensor", "nan_weights", "wrong_shape", "unsafe", "truncated", "text",
            "no_head", "args_not_dict"]


@pytest.mark.parametrize("case", VARIANTS)
def test_a_wrong_checkpoint_is_one_line(hostile_world, variants, case):
    path, pattern = variants[case]
    folder = hostile_world.case_dir(case)
    refused = hostile_world.run_case("infer_features", hostile_world.infer_argv(folder, checkpoint=path))
    line = assert_refused(refused, pattern)
    assert str(path) in line and tree(folder) == []


@pytest.mark.parametrize("case", ["missing", "folder", "unreadable"])
def test_a_checkpoint_that_cannot_be_read(hostile_world, case):
    world = hostile_world
    folder = world.case_dir(case)
    path = {"missing": folder / "nowhere.pt", "folder": world.run, "unreadable": world.copy(world.checkpoint, folder)}[case]
    with unreadable(path) if case == "unreadable" else contextlib.nullcontext() as uid:
        refused = world.run_case("infer_features", world.infer_argv(folder / "out", checkpoint=path), uid=uid,
                                 env=nobody_env(world))
    pattern = {"missing": r"checkpoint not found", "folder": r"is a folder: name the checkpoint file",
               "unreadable": r"cannot read checkpoint .*permission denied"}[case]
    assert_refused(refused, pattern)
    assert not (folder / "out").exists()


def inference(world, folder, name, dataset, split=None, *extra):
    argv = [name, "--checkpoint", world.checkpoint, "--save-dir", folder, "--inference_dataset", dataset,
            "--num_workers", "0", "--device", "cpu", "--chunk_size", "4", "--batch_size", "4", "--inference_noAug"]
    if split is not None:
        argv += ["--inference_dataset_split", split]
    return world.run_case("infer_features", [*argv, *extra])


@pytest.mark.parametrize("case,pattern", [
    ("empty_split", r"holds no items"),
    ("pool_missing", r"300K Random Images file not found: .*\(--inference_dataset_split must name the .npy file\)"),
    ("pool_is_a_folder", r"--inference_dataset_split .* is a folder: for 300K_random_images it must name the .npy"),
    ("pool_not_images", r"expected uint8 images of shape \(N, H, W, 3\)"),
    ("unknown_dataset", r"unknown --inference_dataset 'imagenet-9000'"),
    ("synthetic_split_typo", r"split 'lt_splt' not found.*a synthetic split is an index .npy file"),
    ("cifar_data_missing", r"--data .*nowhere: folder not found"),
    ("data_is_a_file", r"--data .* is a file"),
    ("pool_of_64x64_images", r"32x32 \(CIFAR-stem\) encoder but folder has 64x64 images"),
    ("empty_folder_pool", r"no images \("),
    ("chunk_size_zero", r"--chunk_size must be positive, got 0 \(see infer_features.py --help\)"),
    ("bad_name", r"the output name 'a/b' is not a plain folder name"),
])
def test_bad_datasets_are_one_line(hostile_world, case, pattern):
    world = hostile_world
    folder = world.case_dir(case)
    if case == "empty_split":
        np.save(folder / "empty.npy", np.zeros(0, np.int64))
        refused = inference(world, folder / "out", "x", "synthetic", folder / "empty.npy", "--data", world.synthetic)
    elif case == "pool_missing":
        refused = inference(world, folder / "out", "x", "300K_random_images", folder / "nowhere.npy")
    elif case == "pool_is_a_folder":
        refused = inference(world, folder / "out", "x", "300K_random_images", folder)
    elif case == "pool_not_images":
        np.save(folder / "pool.npy", np.zeros((4, 3), np.float32))
        refused = inference(world, folder / "out", "x", "300K_random_images", folder / "pool.npy")
    elif case == "unknown_dataset":
        refused = inference(world, folder / "out", "x", "imagenet-9000", "list.txt")
    elif case == "synthetic_split_typo":
        refused = inference(world, folder / "out", "x", "synthetic", "lt_splt", "--data", world.synthetic)
    elif case == "cifar_data_missing":
        refused = inference(world, folder / "out", "x", "cifar10", "split1_D_i", "--data", folder / "nowhere")
    elif case == "data_is_a_file":
        refused = inference(world, folder / "out", "x", "synthetic", None, "--data", world.split)
    elif case in ("pool_of_64x64_images", "empty_folder_pool"):
        (folder / "images").mkdir()
        if case == "pool_of_64x64_images":
            Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(folder / "images" / "0.png")
        refused = inference(world, folder / "out", "x", "folder", folder / "images")
    elif case == "chunk_size_zero":
        refused = inference(world, folder / "out", "x", "synthetic", None, "--chunk_size", "0")
    else:
        refused = inference(world, folder / "out", "a/b", "synthetic", None)
    assert_refused(refused, pattern)
    assert not (folder / "out").exists()


def test_an_unreadable_pool(hostile_world):
    world = hostile_world
    folder = world.case_dir("unreadable_pool")
    pool = world.copy(world.pool, folder)
    with unreadable(pool) as uid:
        refused = world.run_case("infer_features", [*world.infer_argv(folder / "out"), "--inference_dataset_split",
                                                    pool], uid=uid, env=nobody_env(world))
    assert_refused(refused, r"pool.npy.*(permission denied|Permission denied)")
    assert not (folder / "out").exists()


def test_cuda_without_a_device(hostile_world):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the refusal is for machines without one")
    folder = hostile_world.case_dir("cuda")
    refused = hostile_world.run_case("infer_features", [*hostile_world.infer_argv(folder), "--device", "cuda"])
    assert_refused(refused, r"--device cuda: no CUDA device is available here")
    assert tree(folder) == []


def image_folder(folder, bad=None, n=8):
    images = folder / "images"
    images.mkdir()
    for i in range(n):
        path = images / f"{i:02d}.png"
        if i == bad:
            path.write_bytes(b"not an image")
        else:
            Image.fromarray(np.random.default_rng(i).integers(0, 256, (32, 32, 3), np.uint8)).save(path)
    return images


@pytest.mark.parametrize("bad", [0, 6], ids=["first_image", "in_a_later_chunk"])
def test_an_undecodable_image_is_named(hostile_world, bad):
    world = hostile_world
    folder = world.case_dir(f"bad_image_{bad}")
    images = image_folder(folder, bad)
    refused = inference(world, folder / "out", "x", "folder", images)
    assert_refused(refused, rf"cannot decode image {images / f'{bad:02d}.png'}")
    if bad:  # the chunks before it are kept: a re-run continues after the image is fixed
        assert (folder / "out" / "x" / "r000_c00000.npz").is_file()
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(images / f"{bad:02d}.png")
        check(inference(world, folder / "out", "x", "folder", images), 0)


# ---- the file system ----------------------------------------------------------------------------------

def test_save_dir_or_output_is_a_file(hostile_world):
    world = hostile_world
    folder = world.case_dir("files")
    (folder / "file").write_text("mine")
    assert_refused(world.run_case("infer_features", world.infer_argv(folder / "file")), r"--save-dir .*file is a file")
    (folder / "out").mkdir()
    (folder / "out" / "pool_noaug").write_text("mine")
    assert_refused(world.run_case("infer_features", world.infer_argv(folder / "out", "pool_noaug", "--overwrite")),
                   r"pool_noaug is a file, not a folder")
    assert (folder / "file").read_text() == "mine" and (folder / "out" / "pool_noaug").read_text() == "mine"


def test_a_read_only_save_dir(hostile_world):
    world = hostile_world
    folder = world.case_dir("read_only")
    (folder / "out").mkdir()
    with read_only(world, folder / "out"):
        refused = world.run_case("infer_features", world.infer_argv(folder / "out"))
    assert_refused(refused, r"read-only file system")
    assert tree(folder / "out") == []


def test_a_full_disk_keeps_the_chunks_written_and_the_run_resumes(hostile_world):
    world = hostile_world
    folder = world.case_dir("full_disk")
    with small_disk(world, folder / "out", 0.25) as out:
        fill_disk(out, 48 * 1024)  # room for meta.json and about two chunks
        refused = world.run_case("infer_features", world.infer_argv(out))
        assert_refused(refused, r"cannot write .*r000_c0000\d.npz: no space left on device")
        written = store_arrays(out / "pool_noaug")
        assert written and not list((out / "pool_noaug").glob(".*.tmp"))
        (out / ".filler").unlink()
        check(world.run_case("infer_features", world.infer_argv(out)), 0)
        assert_same_store(out / "pool_noaug", world.infer / "pool_noaug")


def test_a_full_disk_during_overwrite_keeps_the_old_output(hostile_world):
    world = hostile_world
    folder = world.case_dir("full_disk_overwrite")
    with small_disk(world, folder / "out", 0.5) as out:
        old = world.copy(world.infer / "pool_noaug", out)
        before = checksums(old)
        fill_disk(out, 24 * 1024)
        refused = world.run_case("infer_features", world.infer_argv(out, "pool_noaug", "--overwrite",
                                                                    "--chunk_size", "20"))
        assert_refused(refused, r"no space left on device.*; the pool_noaug it was to replace is back in")
        assert checksums(old) == before and sorted(p.name for p in out.iterdir()) == [".filler", "pool_noaug"]


# ---- names that collide -------------------------------------------------------------------------------

@pytest.mark.parametrize("overwrite", [False, True], ids=["plain", "overwrite"])
def test_an_output_named_like_a_pretraining_run(hostile_world, overwrite):
    world = hostile_world
    folder = world.case_dir("named_like_a_run")
    run = world.copy(world.run, folder)
    before = checksums(run)
    argv = world.infer_argv(folder, "base", *(["--overwrite"] if overwrite else []))
    assert_refused(world.run_case("infer_features", argv), r"holds a pre-training run, not an inference output")
    assert checksums(run) == before and sorted(p.name for p in folder.iterdir()) == ["base"]


@pytest.mark.parametrize("name", [".", "..", ".hidden", "a/b", "../escape", ""])
def test_names_that_are_not_one_folder(hostile_world, name):
    world = hostile_world
    folder = world.case_dir("names")
    world.copy(world.run, folder)
    before = checksums(folder)
    refused = world.run_case("infer_features", world.infer_argv(folder, name, "--overwrite"))
    assert_refused(refused, r"is not a plain folder name")
    assert checksums(folder) == before


@pytest.mark.parametrize("case", ["probe_folder", "split_folder", "save_dir_is_a_run", "folder_of_outputs"])
def test_outputs_of_other_kinds_are_never_written_into(hostile_world, case):
    world = hostile_world
    folder = world.case_dir(case)
    if case == "probe_folder":
        world.copy(world.probe, folder)
        argv = world.infer_argv(folder, "p", "--overwrite")
    elif case == "split_folder":
        (folder / "splits").mkdir()
        (folder / "splits" / ".ltssl-output.json").write_text('{"kind": "splits"}')
        np.save(folder / "splits" / "mine.npy", np.arange(3))
        argv = world.infer_argv(folder, "splits", "--overwrite")
    elif case == "save_dir_is_a_run":
        world.copy(world.run, folder)
        argv = world.infer_argv(folder / "base", "x")
    else:
        (folder / "runs").mkdir()
        world.copy(world.run, folder / "runs")
        argv = world.infer_argv(folder, "runs", "--overwrite")
    before = checksums(folder)
    refused = world.run_case("infer_features", argv)
    assert_refused(refused, r"holds (a probe|a folder of splits|other outputs)|is itself a pre-training run")
    assert checksums(folder) == before


def test_a_symlink_to_the_save_dir(hostile_world):
    world = hostile_world
    folder = world.case_dir("symlink")
    world.copy(world.run, folder)
    os.symlink(folder, folder / "loop")
    before = checksums(folder / "base")
    refused = world.run_case("infer_features", world.infer_argv(folder, "loop", "--overwrite"))
    assert_refused(refused, r"resolves to .* which holds --save-dir itself|holds other outputs")
    assert checksums(folder / "base") == before


# ---- interrupted writes --------------------------------------------------------------------------------

def test_a_kill_in_the_middle_of_a_chunk_resumes_to_the_same_output(hostile_world):
    world = hostile_world
    folder = world.case_dir("kill_chunk")
    killed = world.run_case("infer_features", world.infer_argv(folder),
                            fault={"call": "fsync", "match": ".r000_c00001.npz.*.tmp", "when": "after"})
    assert killed.returncode == -9
    assert (folder / "pool_noaug" / "r000_c00000.npz").is_file()
    check(world.run_case("infer_features", world.infer_argv(folder)), 0)
    assert_same_store(folder / "pool_noaug", world.infer / "pool_noaug")
    assert not list((folder / "pool_noaug").glob(".*.tmp"))


@pytest.mark.parametrize("moment", ["after_moving_aside", "after_a_new_chunk"])
def test_a_kill_during_overwrite_gives_the_old_output_back(hostile_world, moment):
    world = hostile_world
    folder = world.case_dir(f"kill_overwrite_{moment}")
    old = world.copy(world.infer / "pool_aug", folder)
    before = checksums(old)
    fault = {"call": "rename", "match": ".pool_aug.old-*"} if moment == "after_moving_aside" else \
        {"call": "replace", "match": "r000_c00000.npz"}
    argv = world.infer_argv(folder, "pool_aug", "--overwrite", "--seed", "7")
    assert world.run_case("infer_features", argv, fault=fault).returncode == -9
    assert len(list(folder.glob(".pool_aug.old-*"))) == 1
    again = world.run_case("infer_features", world.infer_argv(folder, "pool_aug"))
    check(again, 0)
    assert "interrupted --overwrite had moved the earlier pool_aug" in again.stdout
    assert checksums(old) == before and not list(folder.glob(".pool_aug.old-*"))


# ---- outputs that look finished and are not ------------------------------------------------------------

@pytest.mark.parametrize("damage", ["truncated", "from_another_checkpoint", "from_another_chunk", "garbage"])
def test_an_unusable_chunk_is_found_and_rewritten(hostile_world, damage):
    world = hostile_world
    folder = world.case_dir(damage)
    store = world.copy(world.infer / "pool_noaug", folder)
    chunk = store / "r000_c00001.npz"
    if damage == "truncated":
        chunk.write_bytes(chunk.read_bytes()[:3000])
    elif damage == "from_another_checkpoint":
        with np.load(chunk) as z:  # what another store (another checkpoint) writes there
            arrays = {k: z[k] for k in z.files}
        arrays["_identity"] = np.array("0" * 64)
        np.savez(chunk.with_suffix(".tmp.npz"), **arrays)
        shutil.move(chunk.with_suffix(".tmp.npz"), chunk)
    elif damage == "from_another_chunk":
        shutil.copy(store / "r000_c00000.npz", chunk)
    else:
        chunk.write_bytes(os.urandom(4000))
    # sampling refuses it with one line naming it (the pool's output is checked first)
    refused = world.run_case("sample_mak", world.sample_argv(folder, folder / "split"))
    assert_refused(refused, r"inference output .*pool_noaug is incomplete: .*1 unusable \(e.g. r000_c00001.npz")
    again = world.run_case("infer_features", world.infer_argv(folder))
    check(again, 0)
    assert "rewriting 1 unusable chunk(s)" in again.stdout
    assert_same_store(store, world.infer / "pool_noaug")


@pytest.mark.parametrize("case,content,pattern", [
    ("meta_list", "[1, 2]", r"a JSON list, expected an object"),
    ("meta_invalid", "{", r"meta.json: not valid JSON"),
    ("meta_missing_keys", '{"format": "ltssl-features-1"}', r"meta.json is damaged"),
])
def test_a_wrong_meta_json(hostile_world, case, content, pattern):
    world = hostile_world
    folder = world.case_dir(case)
    store = world.copy(world.infer / "pool_noaug", folder)
    (store / "meta.json").write_text(content)
    before = checksums(store)
    assert_refused(world.run_case("infer_features", world.infer_argv(folder)), pattern)
    assert checksums(store) == before


def test_other_settings_are_refused(hostile_world):
    world = hostile_world
    folder = world.case_dir("other_settings")
    store = world.copy(world.infer / "pool_aug", folder)
    before = checksums(store)
    refused = world.run_case("infer_features", world.infer_argv(folder, "pool_aug", "--inference_repeat_time", "4"))
    assert_refused(refused, r"other settings.*repeats: 3 -> 4")
    assert checksums(store) == before
