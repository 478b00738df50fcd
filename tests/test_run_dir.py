"""utils/run_dir.py: names, kinds, planning, and the claim that moves an old folder aside and puts it back."""
import json

import pytest

from utils.errors import first_line, one_line_errors
from utils.run_dir import (MARKER, RestoredError, RunDirClaim, check_name, folder_kind, plan_run_dir,
                           write_marker)


@pytest.mark.parametrize("name", [".", "..", "", " ", "a/b", "/abs", ".hidden", "x" * 201, "a\0b", " pad"])
def test_names_that_are_not_one_plain_folder_are_refused(name):
    with pytest.raises(ValueError, match="is not a plain folder name"):
        check_name(name)


@pytest.mark.parametrize("name", ["run", "cifar10_simclr", "optimize_0.5lossR10_s0", "a-b", "ümlaut"])
def test_plain_names_pass(name):
    assert check_name(name) == name


def test_kinds_are_read_from_the_marker_or_from_the_files(tmp_path):
    cases = {"marked": ("probe", {}), "model": (None, {"model.pt": b"x"}),
             "results": (None, {"results.json": b"{}"}),
             "meta": (None, {"meta.json": json.dumps({"format": "ltssl-features-1"}).encode()}),
             "probe_args": (None, {"args.json": b'{"shot": "few"}'}),
             "run_args": (None, {"args.json": b'{"COLT": false}'}), "other": (None, {"notes.txt": b"x"})}
    for name, (marker, files) in cases.items():
        (tmp_path / name).mkdir()
        if marker:
            write_marker(tmp_path / name, marker)
        for file, content in files.items():
            (tmp_path / name / file).write_bytes(content)
    assert {name: folder_kind(tmp_path / name) for name in cases} == {
        "marked": "probe", "model": "pretraining", "results": "probe", "meta": "inference",
        "probe_args": "probe", "run_args": "pretraining", "other": None}
    (tmp_path / "other" / MARKER).write_text("[")
    with pytest.raises(ValueError, match="is damaged"):
        folder_kind(tmp_path / "other")


def plan(tmp_path, **kwargs):
    kwargs.setdefault("finished", lambda d: (d / "done").is_file())
    return plan_run_dir(tmp_path, "r", "probe", **kwargs)


def test_plan_modes(tmp_path):
    assert plan(tmp_path).mode == "new"
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "log.txt").write_text("a start")
    assert plan(tmp_path).mode == "restart"
    assert plan(tmp_path, overwrite=True).mode == "overwrite"
    (tmp_path / "r" / "done").write_text("")
    with pytest.raises(ValueError, match="already holds a probe: use --overwrite"):
        plan(tmp_path)
    assert plan(tmp_path, overwrite=True).mode == "overwrite"
    assert plan(tmp_path, can_resume=True).mode == "resume"
    assert plan(tmp_path, resume=True).mode == "resume"
    with pytest.raises(ValueError, match="nothing to continue"):
        plan_run_dir(tmp_path, "other", "probe", finished=lambda d: False, resume=True)


def test_a_failed_replacement_puts_the_old_folder_back_and_says_so(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "done").write_text("old")
    with pytest.raises(RestoredError, match=r"disk full; the r it was to replace is back in .*r, unchanged"):
        with RunDirClaim(plan(tmp_path, overwrite=True)) as claim:
            assert claim.aside.name.startswith(".r.old-") and (claim.aside / "done").read_text() == "old"
            (claim.run_dir / "done").write_text("new, half")
            raise OSError("disk full")
    assert (tmp_path / "r" / "done").read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["r"]


def test_a_kept_replacement_drops_the_old_folder(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "done").write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with RunDirClaim(plan(tmp_path, overwrite=True)) as claim:
            (claim.run_dir / "done").write_text("new")
            claim.keep_new()
            raise KeyboardInterrupt  # after keep_new the new folder stays whatever happens
    assert (tmp_path / "r" / "done").read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["r"]
    assert folder_kind(tmp_path / "r") == "probe"


def test_an_interrupted_overwrite_is_settled_at_the_next_start(tmp_path, capsys):
    (tmp_path / ".r.old-1").mkdir()
    (tmp_path / ".r.old-1" / "done").write_text("old")
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "log.txt").write_text("the new run never finished")
    dry = plan(tmp_path, overwrite=True, dry_run=True)
    assert "a real start puts it back first" in dry.notes[0] and (tmp_path / ".r.old-1").exists()
    with pytest.raises(ValueError, match="already holds"):
        plan(tmp_path)
    assert "it is back in" in capsys.readouterr().out
    assert (tmp_path / "r" / "done").read_text() == "old" and not (tmp_path / ".r.old-1").exists()
    # the new run had finished: the old one stays where it is, and the note says how to restore it
    (tmp_path / ".r.old-2").mkdir()
    planned = plan(tmp_path, overwrite=True)
    assert "restore it with: rm -r" in planned.notes[0] and (tmp_path / ".r.old-2").exists()
    (tmp_path / ".r.old-3").mkdir()
    with pytest.raises(ValueError, match="several interrupted --overwrite runs"):
        plan(tmp_path)


def test_one_line_errors():
    with pytest.raises(SystemExit, match=r"^error: x: permission denied"):
        with one_line_errors():
            raise PermissionError(13, "Permission denied", "x")
    folded = ValueError("Caught ImageDecodeError in DataLoader worker process 0.\nOriginal Traceback (most "
                        "recent call last):\n  File ...\nImageDecodeError: cannot decode image a.png: bad")
    assert first_line(folded) == "cannot decode image a.png: bad"
    with pytest.raises(RuntimeError):  # a bug keeps its traceback
        with one_line_errors():
            raise RuntimeError("bug")
