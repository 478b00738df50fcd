"""sample_mak.py on hostile input: settings that are not numbers, inference outputs that are damaged, NaN
or of another kind, split folders that are files, other outputs, read-only or full, and caches that must
never hand out values of other settings (a kill between writes, a pool re-made at another precision)."""
import numpy as np
import pytest
import torch
from PIL import Image

from tests.hostile import (assert_refused, check, checksums, fill_disk, nobody_env, read_only, small_disk, tree,
                           unreadable)


def sample(world, root, out, *extra, **kwargs):
    return world.run_case("sample_mak", world.sample_argv(root, out, *extra), **kwargs)


@pytest.mark.parametrize("extra,pattern", [
    (["--temperature", "inf"], r"--temperature must be a finite number, got inf"),
    (["--temperature", "nan"], r"--temperature must be a finite number, got nan"),
    (["--temperature", "-1"], r"--temperature must be positive"),
    (["--core_sample_ratio", "inf"], r"--core_sample_ratio must be a finite number, got inf"),
    (["--core_sample_ratio", "nan"], r"--core_sample_ratio must be a finite number"),
    (["--core_sample_ratio", "0.5"], r"--core_sample_ratio must be >= 1"),
    (["--loss_weight", "nan"], r"--loss_weight must be a finite number"),
    (["--loss_weight", "2"], r"--loss_weight must be in \[0, 1\]"),
    (["--sampling_num", "0"], r"--sampling_num must be positive"),
    (["--K_means_num", "0"], r"--K_means_num must be positive"),
    (["--loss_txt_name", "../escape"], r"--loss_txt_name '../escape' is not a plain folder name"),
    (["--sampling_method", "greedy"], r"argument --sampling_method: invalid choice"),
], ids=["temperature_inf", "temperature_nan", "temperature_negative", "ratio_inf", "ratio_nan", "ratio_small",
        "weight_nan", "weight_two", "budget_zero", "clusters_zero", "name_escapes", "unknown_method"])
def test_bad_settings_write_nothing(hostile_world, extra, pattern):
    folder = hostile_world.case_dir("settings")
    refused = sample(hostile_world, hostile_world.infer, folder / "out", *extra)
    assert_refused(refused, pattern, code=2)
    assert tree(folder) == []


@pytest.mark.parametrize("extra,pattern", [
    (["--sampling_num", "61"], r"--sampling_num 61 exceeds the pool of 60 items"),
    (["--loss_repeat_time", "4"], r"--loss_repeat_time 4 exceeds the 3 augmented passes"),
    (["--K_means_num", "101"], r"--K_means_num 101 exceeds the 100 training items"),
    (["--no_aug_sampling_dataset_inference_exp", "nowhere"], r"no inference output at .*nowhere.*infer_features.py"),
    (["--aug_sampling_dataset_inference_exp", "pool_noaug"], r"made without augmentation"),
    (["--no_aug_training_dataset_inference_exp", "pool_noaug"], r"holds the pool .*, not the long-tailed training"),
    (["--no_aug_sampling_dataset_inference_exp", "train_noaug"], r"an ID dataset, not a pool"),
], ids=["budget_too_big", "too_many_passes", "too_many_clusters", "missing_output", "wrong_kind", "pool_as_training",
        "training_as_pool"])
def test_outputs_that_do_not_fit(hostile_world, extra, pattern):
    folder = hostile_world.case_dir("do_not_fit")
    refused = sample(hostile_world, hostile_world.infer, folder / "out", *extra)
    assert_refused(refused, pattern)
    assert tree(folder) == []


def damaged_copy(world, folder, damage):
    root = folder / "infer"
    root.mkdir()
    for name in ("pool_noaug", "pool_aug", "train_noaug"):
        world.copy(world.infer / name, root)
    store = root / "pool_noaug"
    if damage == "nan_features":
        chunk = store / "r000_c00001.npz"
        with np.load(chunk) as z:
            arrays = {k: z[k] for k in z.files}
        arrays["feat"][3, 0] = np.nan
        np.savez(chunk, **arrays)  # identity and shapes intact: only the values are wrong
    elif damage == "meta_list":
        (store / "meta.json").write_text("[]")
    elif damage == "other_checkpoint":  # the training set's features from another (slightly changed) checkpoint
        state = torch.load(world.checkpoint, weights_only=True)
        state["state_dict"]["fc.fc2.weight"] += 0.01
        torch.save(state, folder / "other.pt")
        check(world.run_case("infer_features", world.infer_argv(root, "train_noaug", "--overwrite",
                                                                checkpoint=folder / "other.pt")), 0)
    elif damage == "truncated":
        chunk = store / "r000_c00002.npz"
        chunk.write_bytes(chunk.read_bytes()[:100])
    elif damage == "missing_chunk":
        (store / "r000_c00001.npz").unlink()
    return root


@pytest.mark.parametrize("damage,pattern", [
    ("nan_features", r"of the distances are not finite: the inference output .*pool_noaug holds NaN"),
    ("meta_list", r"pool_noaug/meta.json: not an inference output of this project \(a JSON list"),
    ("other_checkpoint", r"come from different checkpoints"),
    ("truncated", r"pool_noaug is incomplete: .*1 unusable \(e.g. r000_c00002.npz: damaged or truncated"),
    ("missing_chunk", r"pool_noaug is incomplete: of 3 chunks, 1 missing; finish it with"),
])
def test_damaged_inference_outputs_are_one_line(hostile_world, damage, pattern):
    world = hostile_world
    folder = world.case_dir(damage)
    root = damaged_copy(world, folder, damage)
    before = checksums(root)
    assert_refused(sample(world, root, folder / "out"), pattern)
    assert not (folder / "out").exists() or not list((folder / "out").glob("*.npy"))
    assert {k: v for k, v in checksums(root).items() if "mak_cache" not in k and "/cache/" not in k} == before


def test_an_unreadable_chunk(hostile_world):
    world = hostile_world
    folder = world.case_dir("unreadable_chunk")
    root = damaged_copy(world, folder, None)
    with unreadable(root / "pool_noaug" / "r000_c00000.npz") as uid:
        refused = sample(world, root, folder / "out", uid=uid, env=nobody_env(world))
    assert_refused(refused, r"r000_c00000.npz: damaged or truncated \(.*permission denied")


# ---- where the split goes -------------------------------------------------------------------------------

def test_split_save_dir_is_a_file(hostile_world):
    folder = hostile_world.case_dir("split_dir_file")
    (folder / "out").write_text("mine")
    assert_refused(sample(hostile_world, hostile_world.infer, folder / "out"), r"--split_save_dir .* is a file")
    assert (folder / "out").read_text() == "mine"


@pytest.mark.parametrize("kind", ["run", "probe", "inference", "folder_of_runs"])
def test_split_save_dir_is_another_kind_of_output(hostile_world, kind):
    world = hostile_world
    folder = world.case_dir(f"split_into_{kind}")
    if kind == "folder_of_runs":
        (folder / "runs").mkdir()
        world.copy(world.run, folder / "runs")
        target = folder / "runs"
    else:
        target = world.copy({"run": world.run, "probe": world.probe, "inference": world.infer / "pool_aug"}[kind],
                            folder)
    before = checksums(folder)
    refused = sample(world, world.infer, target, "--loss_dist_save_dir", folder / "cache")
    assert_refused(refused, r"holds (a pre-training run|a probe|an inference output|other outputs)")
    assert checksums(folder) == before


def test_an_existing_split_is_kept(hostile_world):
    world = hostile_world
    folder = world.case_dir("existing")
    (folder / "out").mkdir()
    (folder / "out" / "mine.npy").write_bytes(b"keep")
    assert_refused(sample(world, world.infer, folder / "out", "--loss_txt_name", "mine"),
                   r"mine.npy exists: pass --overwrite")
    assert (folder / "out" / "mine.npy").read_bytes() == b"keep"


def test_a_read_only_split_folder(hostile_world):
    world = hostile_world
    folder = world.case_dir("split_ro")
    (folder / "out").mkdir()
    with read_only(world, folder / "out"):
        refused = sample(world, world.infer, folder / "out", "--loss_dist_save_dir", folder / "cache")
    assert_refused(refused, r"--split_save_dir .* read-only file system")
    assert tree(folder / "out") == []


def test_a_full_disk_keeps_the_earlier_split(hostile_world):
    world = hostile_world
    folder = world.case_dir("split_full")
    with small_disk(world, folder / "out", 0.25) as out:
        check(sample(world, world.infer, out, "--sampling_method", "random", "--loss_txt_name", "s",
                     "--loss_dist_save_dir", folder / "cache"), 0)
        before = checksums(out / "s.npy")
        fill_disk(out, 0)
        refused = sample(world, world.infer, out, "--sampling_method", "random", "--loss_txt_name", "s",
                         "--seed", "3", "--overwrite", "--loss_dist_save_dir", folder / "cache")
        assert_refused(refused, r"cannot write .*: no space left on device")
        assert checksums(out / "s.npy") == before and not list(out.glob(".*.tmp"))


def test_the_cache_folder_is_a_file(hostile_world):
    folder = hostile_world.case_dir("cache_file")
    (folder / "cache").write_text("mine")
    refused = hostile_world.run_case("sample_mak", [*hostile_world.sample_argv(hostile_world.infer, folder / "out"),
                                                    "--loss_dist_save_dir", folder / "cache"])
    assert_refused(refused, r"--loss_dist_save_dir .* is a file")
    assert (folder / "cache").read_text() == "mine"


# ---- the caches never hand out values of other settings ---------------------------------------------------

def cache_lines(result):
    return [line for line in result.stdout.splitlines() if "cache" in line or "computed" in line]


def test_a_pool_remade_at_another_precision_is_not_served_from_the_cache(hostile_world):
    world = hostile_world
    folder = world.case_dir("precision")
    root = damaged_copy(world, folder, None)
    first = sample(world, root, folder / "out")
    check(first, 0)
    assert "ECLE computed" in first.stdout
    again = sample(world, root, folder / "out", "--overwrite")
    assert "ECLE from cache" in again.stdout and "distances from cache" in again.stdout
    check(world.run_case("infer_features", world.infer_argv(root, "pool_aug", "--overwrite", "--precision", "fp32")), 0)
    remade = sample(world, root, folder / "out", "--overwrite")
    check(remade, 0)
    assert "ECLE computed" in remade.stdout and "distances from cache" in remade.stdout, cache_lines(remade)


def test_a_pool_at_another_path_is_not_served_from_the_cache(hostile_world):
    world = hostile_world
    folder = world.case_dir("image_root")
    root = damaged_copy(world, folder, None)
    check(sample(world, root, folder / "out"), 0)
    moved = world.copy(world.pool, folder)  # the same pixels under another path: another source
    for which in ("pool_noaug", "pool_aug"):
        check(world.run_case("infer_features", [*world.infer_argv(root, which, "--overwrite"),
                                                "--inference_dataset_split", moved]), 0)
    again = sample(world, root, folder / "out", "--overwrite")
    check(again, 0)
    assert "ECLE computed" in again.stdout and "distances computed" in again.stdout, cache_lines(again)


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_kill_at_the_cache_write_never_serves_other_settings(hostile_world, when):
    world = hostile_world
    folder = world.case_dir(f"kill_cache_{when}")
    killed = sample(world, world.infer, folder / "out", fault={"call": "replace", "match": "ecle_R3_*.npz",
                                                               "when": when})
    assert killed.returncode == -9
    other = sample(world, world.infer, folder / "out", "--ecle_batch_size", "8")
    check(other, 0)
    assert "ECLE computed" in other.stdout, cache_lines(other)
    same = sample(world, world.infer, folder / "out", "--loss_txt_name", "again")
    check(same, 0)
    assert ("ECLE from cache" if when == "after" else "ECLE computed") in same.stdout, cache_lines(same)


def test_caches_of_the_earlier_layout_are_ignored(hostile_world):
    world = hostile_world
    folder = world.case_dir("old_cache")
    cache = folder / "out" / "cache"
    cache.mkdir(parents=True)
    np.save(cache / "ecle_R3.npy", np.zeros(60))
    (cache / "ecle_R3.json").write_text("{}")
    result = sample(world, world.infer, folder / "out")
    check(result, 0)
    assert "ECLE computed" in result.stdout


# ---- images and devices ---------------------------------------------------------------------------------

def test_an_undecodable_image_in_the_picture(hostile_world):
    world = hostile_world
    folder = world.case_dir("bad_image")
    images = folder / "images"
    images.mkdir()
    for i in range(12):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (32, 32, 3), np.uint8)).save(images / f"{i}.png")
    common = ["--checkpoint", world.checkpoint, "--save-dir", folder, "--inference_dataset", "folder",
              "--inference_dataset_split", images, "--num_workers", "0", "--device", "cpu", "--inference_noAug"]
    check(world.run_case("infer_features", ["pool_noaug", *common]), 0)
    world.copy(world.infer / "train_noaug", folder)
    for i in range(12):
        (images / f"{i}.png").write_bytes(b"broken")
    refused = world.run_case("sample_mak", ["--inference_root", folder, "--no_aug_sampling_dataset_inference_exp",
                                            "pool_noaug", "--sampling_method", "random", "--sampling_num", "4",
                                            "--split_save_dir", folder / "out", "--device", "cpu"])
    assert_refused(refused, rf"cannot decode image {images}/\d+.png")
    assert not list((folder / "out").glob("*.npy"))  # the split is written last


def test_cuda_without_a_device(hostile_world):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the refusal is for machines without one")
    folder = hostile_world.case_dir("cuda")
    refused = sample(hostile_world, hostile_world.infer, folder / "out", "--device", "cuda")
    assert_refused(refused, r"--device cuda: no CUDA device")
    assert tree(folder) == []
