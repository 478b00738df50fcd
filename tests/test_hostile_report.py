"""report.py on hostile input: wrong or non-finite results.json, results of different datasets, --out that
is a file, another kind of output, read-only or full; each refused with one line, nothing changed."""
import json

import pytest

from tests.hostile import (assert_refused, checksums, fill_disk, read_only, small_disk, unreadable, nobody_env,
                           tree)


def result(**change) -> dict:
    base = {"all": 50.0, "many": 60.0, "medium": 50.0, "few": 40.0, "std": 8.2, "method": "m", "shot": "full",
            "dataset": "synthetic", "per_class": [50.0] * 10, "class_counts": list(range(100, 0, -10)),
            "groups": {"many": [0, 1, 2, 3], "medium": [4, 5, 6], "few": [7, 8, 9]}}
    base.update(change)
    return base


def write_results(folder, name, content) -> None:
    (folder / name).mkdir(parents=True)
    text = content if isinstance(content, (str, bytes)) else json.dumps(content)
    path = folder / name / "results.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())


CONTENT_CASES = {
    "nan_metric": ('{"all": NaN, "method": "m"}', r"'all' is nan, not a finite number"),
    "infinite_metric": ('{"all": 50.0, "std": Infinity}', r"'std' is inf"),
    "negative_infinite_metric": ('{"few": -Infinity}', r"'few' is -inf"),
    "nan_per_class": (json.dumps(result()).replace("[50.0, 50.0", "[NaN, 50.0"), r"'per_class' must hold finite"),
    "string_class_count": (json.dumps(result(class_counts=["a"] * 10)), r"'class_counts' must hold finite"),
    "json_list": ("[1, 2]", r"expected an object of metrics, got list"),
    "metric_string": ('{"all": "high"}', r"'all' must be a number"),
    "metric_bool": ('{"all": true}', r"'all' must be a number"),
    "no_metrics": ('{"method": "x"}', r"none of the metrics"),
    "length_mismatch": (json.dumps(result(class_counts=[1, 2])), r"same length"),
    "empty_per_class": (json.dumps(result(per_class=[], class_counts=[])), r"'per_class' is empty"),
    "invalid_json": ("{", r"not a results.json"),
    "binary_garbage": (bytes(range(256)) * 4, r"not a results.json"),
    "shot_unknown": (json.dumps(result(shot="half")), r"'shot' must be one of full, few"),
    "method_not_string": (json.dumps(result(method=3)), r"'method' must be a string"),
}


@pytest.mark.parametrize("case", sorted(CONTENT_CASES))
def test_a_wrong_results_json_is_one_line(hostile_world, case):
    world = hostile_world
    folder = world.case_dir(case)
    write_results(folder, "good", result(method="good"))
    content, pattern = CONTENT_CASES[case]
    write_results(folder, "bad", content)
    before = checksums(folder)
    refused = world.run_case("report", [folder, "--out", folder / "out"])
    assert_refused(refused, pattern, code=2)
    assert checksums(folder) == before and not (folder / "out").exists()


@pytest.mark.parametrize("case", ["10_and_100_classes", "two_datasets_of_10_classes"])
def test_results_of_different_datasets_are_refused(hostile_world, case):
    world = hostile_world
    folder = world.case_dir(case)
    write_results(folder, "a", result(method="a"))
    other = result(method="b", per_class=[1.0] * 100, class_counts=list(range(100, 0, -1)), dataset="cifar100") \
        if case == "10_and_100_classes" else result(method="b", dataset="cifar10")
    write_results(folder, "b", other)
    refused = world.run_case("report", [folder, "--out", folder / "out"])
    assert_refused(refused, r"different datasets.*report each dataset's results separately", code=2)
    assert not (folder / "out").exists()


def test_every_method_is_drawn_in_per_class_png(hostile_world):
    """Not hostile, but the same run: three methods give three bar series (not two)."""
    import report
    results = [dict(result(method=m), path=f"{m}/results.json") for m in ("a", "b", "c")]
    drawn = []
    import utils.plots
    original = utils.plots.save_figure

    def capture(fig, path, dpi=100):
        drawn.append(len(fig.axes[0].containers))
        original(fig, path, dpi)

    utils.plots.save_figure = capture
    try:
        report.plot_per_class(results, hostile_world.case_dir("per_class") / "per_class.png", ["a", "b", "c"])
    finally:
        utils.plots.save_figure = original
    assert drawn == [3]


def prepare_out(folder):
    write_results(folder, "in", result())
    out = folder / "out"
    out.mkdir()
    (out / "table.md").write_text("the earlier table\n")
    return out


def test_out_is_a_file(hostile_world):
    folder = hostile_world.case_dir("out_file")
    write_results(folder, "in", result())
    (folder / "out").write_text("mine")
    for out in (folder / "out", folder / "out" / "sub"):
        assert_refused(hostile_world.run_case("report", [folder / "in", "--out", out]), r"is a file", code=2)
    assert (folder / "out").read_text() == "mine"


@pytest.mark.parametrize("kind", ["probe", "run"])
def test_out_is_another_kind_of_output(hostile_world, kind):
    world = hostile_world
    folder = world.case_dir(f"out_{kind}")
    write_results(folder, "in", result())
    target = world.copy(world.probe if kind == "probe" else world.run, folder)
    before = checksums(target)
    refused = world.run_case("report", [folder / "in", "--out", target])
    assert_refused(refused, r"holds a (probe|pre-training run): give the report a folder of its own", code=2)
    assert checksums(target) == before


def test_out_on_a_read_only_file_system(hostile_world):
    folder = hostile_world.case_dir("out_ro")
    out = prepare_out(folder)
    before = checksums(out)
    with read_only(hostile_world, out):
        refused = hostile_world.run_case("report", [folder / "in", "--out", out])
    assert_refused(refused, r"cannot write .*table.md: read-only file system", code=2)
    assert checksums(out) == before


def test_out_on_a_full_disk_keeps_the_earlier_report(hostile_world):
    folder = hostile_world.case_dir("out_full")
    write_results(folder, "in", result())
    with small_disk(hostile_world, folder / "out", 1) as out:
        (out / "table.md").write_text("the earlier table\n")
        before = checksums(out / "table.md")
        fill_disk(out, 0)
        refused = hostile_world.run_case("report", [folder / "in", "--out", out])
        assert_refused(refused, r"cannot write .*: no space left on device", code=2)
        assert checksums(out / "table.md") == before and not list(out.glob(".*.tmp"))


def test_an_unreadable_results_json(hostile_world):
    folder = hostile_world.case_dir("unreadable")
    write_results(folder, "in", result())
    with unreadable(folder / "in" / "results.json") as uid:
        refused = hostile_world.run_case("report", [folder / "in", "--out", folder / "out"], uid=uid,
                                         env=nobody_env(hostile_world))
    assert_refused(refused, r"cannot read .*results.json: permission denied", code=2)


def test_a_folder_named_results_json(hostile_world):
    folder = hostile_world.case_dir("results_folder")
    (folder / "in" / "results.json").mkdir(parents=True)
    refused = hostile_world.run_case("report", [folder / "in", "--out", folder / "out"])
    assert_refused(refused, r"results.json: is a folder", code=2)


def test_a_missing_input(hostile_world):
    folder = hostile_world.case_dir("missing")
    refused = hostile_world.run_case("report", [folder / "nowhere", "--out", folder / "out"])
    assert_refused(refused, r"no such file or folder", code=2)
    assert tree(folder) == []


def test_an_unknown_flag_is_one_line(hostile_world):
    refused = hostile_world.run_case("report", ["x", "--out", "y", "--colour", "red"])
    assert_refused(refused, r"unrecognized arguments: --colour red", code=2)
