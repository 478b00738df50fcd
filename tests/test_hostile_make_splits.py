"""splits/make_splits.py on hostile input: missing or wrong data and lists, an --out that is a file, another
kind of output, read-only or full; one line each, nothing written."""
import pytest

from tests.hostile import (assert_refused, checksums, fill_disk, nobody_env, read_only, small_disk, tree,
                           unreadable)


def image_list(folder, lines=("a/1.JPEG 0", "a/2.JPEG 0", "b/3.JPEG 1", "b/4.JPEG 1")):
    path = folder / "train.txt"
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def fewshot(world, listing, out, *extra):
    return world.run_case("make_splits", ["--dataset", "imagenet100", "--train_list", listing, "--out", out,
                                          "--fraction", "0.5", *extra])


@pytest.mark.parametrize("case,lines,pattern", [
    ("malformed_line", ("a/1.JPEG zero",), r"train.txt:1: expected 'relative/path label'"),
    ("empty_list", (), r"no images listed"),
])
def test_a_wrong_list(hostile_world, case, lines, pattern):
    folder = hostile_world.case_dir(case)
    assert_refused(fewshot(hostile_world, image_list(folder, lines), folder / "out"), pattern, code=2)
    assert not (folder / "out").exists()


def test_a_missing_list(hostile_world):
    folder = hostile_world.case_dir("missing_list")
    assert_refused(fewshot(hostile_world, folder / "nowhere.txt", folder / "out"), r"image list not found", code=2)


def test_a_binary_list(hostile_world):
    folder = hostile_world.case_dir("binary_list")
    (folder / "train.txt").write_bytes(bytes(range(256)))
    assert_refused(fewshot(hostile_world, folder / "train.txt", folder / "out"), r"train.txt", code=2)


def test_an_unreadable_list(hostile_world):
    folder = hostile_world.case_dir("unreadable_list")
    listing = image_list(folder)
    with unreadable(listing) as uid:
        refused = hostile_world.server.run("make_splits", ["--dataset", "imagenet100", "--train_list", listing,
                                                           "--out", folder / "out"], folder, uid=uid,
                                           env=nobody_env(hostile_world))
    assert_refused(refused, r"train.txt: permission denied", code=2)


@pytest.mark.parametrize("case", ["out_is_a_file", "out_under_a_file"])
def test_out_is_a_file(hostile_world, case):
    folder = hostile_world.case_dir(case)
    (folder / "out").write_text("mine")
    out = folder / "out" if case == "out_is_a_file" else folder / "out" / "sub"
    assert_refused(fewshot(hostile_world, image_list(folder), out), r"is a file", code=2)
    assert (folder / "out").read_text() == "mine"


@pytest.mark.parametrize("kind", ["run", "probe", "inference"])
def test_out_is_another_kind_of_output(hostile_world, kind):
    world = hostile_world
    folder = world.case_dir(f"out_{kind}")
    target = world.copy({"run": world.run, "probe": world.probe, "inference": world.infer / "pool_noaug"}[kind],
                        folder)
    before = checksums(target)
    refused = fewshot(world, image_list(folder), target)
    assert_refused(refused, r"holds (a pre-training run|a probe|an inference output), not a folder of splits", code=2)
    assert checksums(target) == before


def test_out_holds_other_outputs(hostile_world):
    world = hostile_world
    folder = world.case_dir("out_holds_runs")
    (folder / "runs").mkdir()
    world.copy(world.run, folder / "runs")
    before = checksums(folder / "runs")
    assert_refused(fewshot(world, image_list(folder), folder / "runs"), r"holds other outputs", code=2)
    assert checksums(folder / "runs") == before


def test_an_existing_list_is_kept(hostile_world):
    folder = hostile_world.case_dir("exists")
    (folder / "out").mkdir()
    (folder / "out" / "train_1pct.txt").write_text("mine\n")
    assert_refused(fewshot(hostile_world, image_list(folder), folder / "out"), r"exists \(use --overwrite\)",
                   code=2)
    assert (folder / "out" / "train_1pct.txt").read_text() == "mine\n"


def test_out_on_a_read_only_file_system(hostile_world):
    folder = hostile_world.case_dir("out_ro")
    (folder / "out").mkdir()
    listing = image_list(folder)
    with read_only(hostile_world, folder / "out"):
        refused = fewshot(hostile_world, listing, folder / "out")
    assert_refused(refused, r"read-only file system", code=2)
    assert tree(folder / "out") == []


def test_out_on_a_full_disk_keeps_the_earlier_list(hostile_world):
    folder = hostile_world.case_dir("out_full")
    listing = image_list(folder)
    with small_disk(hostile_world, folder / "out", 1) as out:
        (out / "train_1pct.txt").write_text("the earlier list\n")
        (out / ".ltssl-output.json").write_text('{"kind": "splits"}')
        fill_disk(out, 0)
        refused = fewshot(hostile_world, listing, out, "--overwrite")
        assert_refused(refused, r"cannot write .*train_1pct.txt: no space left on device.*; the earlier train_1pct.txt is unchanged", code=2)
        assert (out / "train_1pct.txt").read_text() == "the earlier list\n"


@pytest.mark.parametrize("extra,pattern", [
    (["--dataset", "cifar10", "--data", "NOWHERE"], r"cifar10 folder not found|no such"),
    (["--dataset", "cifar10", "--data", "FILE"], r"cifar10 folder not found|is a file"),
    (["--dataset", "cifar10"], r"--data is required"),
    (["--dataset", "cifar10", "--data", "NOWHERE", "--num_splits", "0"], r"--num_splits must be at least 1"),
    (["--dataset", "imagenet100", "--train_list", "LIST", "--fraction", "nan"], r"--fraction must be in \(0, 1\]"),
    (["--dataset", "imagenet100", "--train_list", "LIST", "--fraction", "0"], r"--fraction must be in \(0, 1\]"),
    (["--dataset", "synthetic"], r"argument --dataset: invalid choice"),
    (["--dataset", "imagenet100"], r"--train_list is required"),
], ids=["data_missing", "data_is_a_file", "no_data", "no_splits", "fraction_nan", "fraction_zero",
        "dataset_synthetic", "no_list"])
def test_bad_settings(hostile_world, extra, pattern):
    folder = hostile_world.case_dir("settings")
    (folder / "file").write_text("x")
    listing = image_list(folder)
    extra = [str({"NOWHERE": folder / "nowhere", "FILE": folder / "file", "LIST": listing}.get(e, e)) for e in extra]
    refused = hostile_world.run_case("make_splits", [*extra, "--out", folder / "out"])
    assert_refused(refused, pattern, code=2)
    assert not (folder / "out").exists()
