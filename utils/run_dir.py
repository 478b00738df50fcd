"""Output folders: claiming one for a run, replacing an old one safely, and telling kinds apart.

Every command that writes a folder of results (a pre-training run, a probe, an inference output, a folder
of splits) goes through here:

* :func:`check_name` refuses names that are not one plain folder name (``.``, ``..``, ``a/b``, hidden
  names), so a run can never resolve to its ``--save-dir``, a parent of other runs or a place elsewhere.
* Each folder is marked with its kind (:data:`MARKER`, a small JSON file), and folders written before the
  marker existed are recognised by their files (:func:`folder_kind`). Nothing is ever written into a folder
  of another kind, nor into a folder that holds other outputs, with ``--overwrite`` or without.
* :func:`plan_run_dir` checks everything and writes nothing; :class:`RunDirClaim` then takes the folder:
  with ``--overwrite`` the old folder is moved aside to ``.<name>.old-<time>`` beside it, dropped once the
  new run has saved what makes it a run (:meth:`RunDirClaim.keep_new`), and put back if the new run fails
  first. If the process is killed meanwhile, the next start puts it back (or, when the new run had already
  saved, says where the old one is and how to restore it).
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from utils.checkpoint import atomic_write, remove_stale_temporaries
from utils.errors import message

MARKER = ".ltssl-output.json"
KINDS = {"pretraining": "a pre-training run", "probe": "a probe", "inference": "an inference output",
         "splits": "a folder of splits"}  # kind -> what it is, with its article
MAX_NAME_BYTES = 200  # the moved-aside name adds about 30 characters to it; file systems allow 255


def check_name(name, what: str = "the experiment name") -> str:
    """``name`` if it is one plain folder name; ValueError otherwise."""
    text = "" if name is None else str(name)
    reasons = []
    if not text.strip():
        reasons.append("it is empty")
    elif text in (".", ".."):
        reasons.append("it names the folder itself or its parent")
    elif "/" in text or (os.altsep and os.altsep in text) or os.sep in text:
        reasons.append("it holds a path separator")
    elif text.startswith("."):
        reasons.append("hidden names are kept for folders moved aside")
    elif "\0" in text or text != text.strip():
        reasons.append("it holds a NUL byte or leading/trailing spaces")
    elif len(text.encode()) > MAX_NAME_BYTES:
        reasons.append(f"it is longer than {MAX_NAME_BYTES} bytes")
    if reasons:
        raise ValueError(f"{what} {text!r} is not a plain folder name ({reasons[0]}): give one name such as "
                         f"my_run, without '/', not starting with '.'")
    return text


# ---- kinds ---------------------------------------------------------------------------------------------

def write_marker(folder: Path, kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown output kind {kind!r}")
    if read_marker(folder) == kind:
        return
    text = json.dumps({"kind": kind, "what": KINDS[kind], "written_by": "ltssl"}, indent=2) + "\n"
    atomic_write(Path(folder) / MARKER, lambda f: f.write(text.encode()))


def read_marker(folder: Path) -> str | None:
    path = Path(folder) / MARKER
    if not path.is_file():
        return None
    try:
        kind = json.loads(path.read_text()).get("kind")
    except (OSError, ValueError, AttributeError) as e:
        raise ValueError(f"{path} is damaged ({message(e)}): this project marks the kind of each output "
                         f"folder with it; restore it or move the folder away") from e
    if kind not in KINDS:
        raise ValueError(f"{path} names an unknown output kind {kind!r}")
    return kind


def folder_kind(folder: Path) -> str | None:
    """The kind of output ``folder`` holds (one of :data:`KINDS`), or None for no output of this project.

    Marked folders say it; older ones are recognised by their files."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    marked = read_marker(folder)
    if marked:
        return marked
    if (folder / "meta.json").is_file():
        try:
            meta = json.loads((folder / "meta.json").read_text())
        except (OSError, ValueError):
            meta = None
        if isinstance(meta, dict) and str(meta.get("format", "")).startswith("ltssl-features"):
            return "inference"
    if (folder / "results.json").is_file() or (folder / "probe.pt").is_file():
        return "probe"
    if (folder / "model.pt").is_file() or any(folder.glob("model_*.pt")):
        return "pretraining"
    if (folder / "args.json").is_file():
        try:
            saved = json.loads((folder / "args.json").read_text())
        except (OSError, ValueError):
            saved = None
        if isinstance(saved, dict):
            if "shot" in saved:
                return "probe"
            if "COLT" in saved or "lr_warmup_epochs" in saved:
                return "pretraining"
    return None


def outputs_inside(folder: Path, limit: int = 3, besides: str | None = None) -> list[str]:
    """Names of up to ``limit`` sub-folders of ``folder`` that are outputs of this project (other than of
    kind ``besides``)."""
    found = []
    try:
        children = sorted(Path(folder).iterdir())
    except OSError:
        return found
    for child in children:
        if child.name.startswith(".") or not child.is_dir():
            continue
        try:
            kind = folder_kind(child)
        except ValueError:
            kind = "damaged"
        if kind and kind != besides:
            found.append(f"{child.name} ({KINDS.get(kind, 'an output')})")
            if len(found) == limit:
                break
    return found


def check_output_folder(folder: Path, kind: str, what: str) -> Path:
    """A folder that files of ``kind`` may be written into (it may not exist yet; nothing in it is ever
    removed): ValueError for a file, a folder of another kind, a folder that holds outputs of other kinds,
    or one that cannot be written."""
    folder = Path(folder).expanduser()
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{what} {folder} is a file, not a folder: choose a folder")
    other = folder_kind(folder)
    if other is not None and other != kind:
        raise ValueError(f"{what} {folder} holds {KINDS[other]}, not {KINDS[kind]}: choose another folder "
                         f"(nothing was written)")
    inside = outputs_inside(folder, besides=kind)
    if other is None and inside:
        raise ValueError(f"{what} {folder} holds other outputs ({', '.join(inside)}): it is a folder of outputs, "
                         f"not {KINDS[kind]}; choose another folder")
    check_writable(folder, what)
    return folder


def check_writable(path: Path, what: str) -> None:
    """ValueError unless ``path`` (or, if it does not exist, the folder that would hold it) can be written."""
    path = Path(path)
    existing = next((p for p in (path, *path.parents) if p.exists() or p.is_symlink()), None)
    if existing is None:
        return
    if not existing.is_dir():
        raise ValueError(f"{what} {path}: {existing} is a file, not a folder")
    if _read_only(existing):
        raise ValueError(f"{what} {path}: {existing} is on a read-only file system: choose a writable folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {path}: {existing} is not writable by this user (permission denied): "
                         f"choose another folder or change its permissions")


def _read_only(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False


# ---- planning and claiming -----------------------------------------------------------------------------

@dataclass
class RunPlan:
    """What :func:`plan_run_dir` decided. Modes: "new" (nothing there), "restart" (a folder of this kind
    that never became a finished output), "resume" (continue it), "overwrite" (move it aside)."""
    run_dir: Path
    kind: str
    mode: str
    notes: list[str] = field(default_factory=list)


def moved_aside(run_dir: Path) -> list[Path]:
    """Folders an --overwrite of ``run_dir`` moved aside and did not get to remove or put back."""
    try:
        return sorted(p for p in run_dir.parent.glob(f".{run_dir.name}.old-*") if p.is_dir())
    except OSError:
        return []


def aside_path(run_dir: Path) -> Path:
    return run_dir.with_name(f".{run_dir.name}.old-{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 10**6:06d}")


def plan_run_dir(save_dir, name, kind: str, *, finished: Callable[[Path], bool],
                 started: Callable[[Path], bool] | None = None, complete: Callable[[Path], bool] | None = None,
                 resume: bool = False, overwrite: bool = False,
                 can_resume: bool = False, restart_only: bool = False, dry_run: bool = False,
                 already: str | None = None, name_flag: str = "the experiment name",
                 save_dir_flag: str = "--save-dir") -> RunPlan:
    """Decide how ``<save_dir>/<name>`` becomes this run's folder; checks only, raises ValueError.

    ``finished(folder)``: whether the folder holds a finished output (a checkpoint, results) that must not
    be replaced without ``overwrite`` (it may be true of a folder that does not exist, e.g. a --resume
    from another checkpoint). ``started(folder)``: whether an unfinished folder holds a start of this kind
    (default: any file but the marker); a start is moved aside by ``overwrite`` too. ``resume``: continue
    it (pre-training --resume); ``restart_only``: such a resume that finds only a start begins again.
    ``can_resume``: a finished folder is continued by default (inference outputs skip what is done).
    ``already``: the refusal of a finished folder without ``overwrite``. An --overwrite that was killed
    left the old folder aside: unless ``dry_run``, it is put back first, unless the new folder is
    ``complete`` (default: ``finished``), i.e. the new run had made it what replaces the old one.
    """
    check_name(name, name_flag)
    save_dir = Path(save_dir).expanduser()
    if save_dir.exists() and not save_dir.is_dir():
        raise ValueError(f"{save_dir_flag} {save_dir} is a file, not a folder: give the folder that holds the "
                         f"outputs")
    holder = folder_kind(save_dir)
    if holder is not None:
        raise ValueError(f"{save_dir_flag} {save_dir} is itself {KINDS[holder]}: give the folder that holds "
                         f"the outputs (e.g. its parent)")
    run_dir = save_dir / name
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"{run_dir} is a file, not a folder: choose another name or --save-dir")
    if run_dir.exists():
        real, parent = run_dir.resolve(), save_dir.resolve()
        if real == parent or real in parent.parents:
            raise ValueError(f"{run_dir} resolves to {real}, which holds {save_dir_flag} itself: choose another name")
    other = folder_kind(run_dir)
    if other is not None and other != kind:
        raise ValueError(f"{run_dir} holds {KINDS[other]}, not {KINDS[kind]}: choose another name or "
                         f"{save_dir_flag} (nothing was changed{', --overwrite replaces only ' + KINDS[kind] if overwrite else ''})")
    inside = outputs_inside(run_dir)
    if other is None and inside:
        raise ValueError(f"{run_dir} holds other outputs ({', '.join(inside)}): it is a folder of outputs, not "
                         f"{KINDS[kind]}; choose another name")
    plan = RunPlan(run_dir, kind, "new")
    asides = moved_aside(run_dir)
    if asides:
        settle_moved_aside(run_dir, asides, kind, complete or finished, plan.notes, dry_run)
    done = finished(run_dir)
    begun = run_dir.is_dir() and (started(run_dir) if started else
                                  any(p.name != MARKER for p in run_dir.iterdir()))
    if resume:
        if done:
            plan.mode = "resume"
        elif begun and restart_only:
            plan.mode = "restart"
        else:
            raise ValueError(f"--resume: nothing to continue in {run_dir} (no run started there)")
    elif done and overwrite:
        plan.mode = "overwrite"
    elif done and can_resume:
        plan.mode = "resume"
    elif done:
        raise ValueError(already or f"{run_dir} already holds {KINDS[kind]}: use --overwrite to replace it, "
                                    f"or another name")
    elif begun:
        plan.mode = "overwrite" if overwrite else "restart"
    check_writable(run_dir, "output folder")
    return plan


def settle_moved_aside(run_dir: Path, asides: list[Path], kind: str, complete, notes: list[str],
                       dry_run: bool) -> None:
    """An interrupted --overwrite left ``asides``. If the new run never finished, put the old one back;
    otherwise say where the old one is and how to restore it. Each note is printed at once (stdout), so it
    is seen even when the start is refused afterwards."""
    _settle(run_dir, asides, kind, complete, notes, dry_run)
    for note in notes:
        print(note, flush=True)


def _settle(run_dir: Path, asides: list[Path], kind: str, complete, notes: list[str], dry_run: bool) -> None:
    if len(asides) > 1:
        listing = ", ".join(str(a) for a in asides)
        raise ValueError(f"several interrupted --overwrite runs left older versions of {run_dir}: {listing}; "
                         f"keep one (mv it to {run_dir}) and remove the others before starting again")
    aside = asides[0]
    if run_dir.is_dir() and complete(run_dir):
        notes.append(f"note: {aside} holds the earlier {run_dir.name}, which an interrupted --overwrite replaced "
                     f"with the one in {run_dir}; remove it, or restore it with: rm -r {run_dir} && mv {aside} "
                     f"{run_dir}")
        return
    if dry_run:
        notes.append(f"note: an interrupted --overwrite left the earlier {run_dir.name} in {aside}; a real start "
                     f"puts it back first")
        return
    if run_dir.exists():
        shutil.rmtree(run_dir)
    aside.rename(run_dir)
    notes.append(f"note: an interrupted --overwrite had moved the earlier {run_dir.name} to {aside}; it is back "
                 f"in {run_dir}")


class RestoredError(ValueError):
    """A run that was to replace an old one failed; the old one is back. The message says both."""


class RunDirClaim:
    """Take the planned folder (main process only): move an old one aside (overwrite) or remove the
    temporaries of interrupted writes, create the folder and mark its kind. Until :meth:`keep_new`, a
    failure puts the old folder back; a user error then says so in its one line (RestoredError)."""

    def __init__(self, plan: RunPlan, is_main: bool = True):
        self.plan, self.is_main = plan, is_main
        self.aside: Path | None = None
        self.kept = False

    @property
    def run_dir(self) -> Path:
        return self.plan.run_dir

    def __enter__(self) -> "RunDirClaim":
        if self.is_main:
            run_dir = self.plan.run_dir
            if self.plan.mode == "overwrite":
                self.aside = aside_path(run_dir)
                run_dir.rename(self.aside)
            else:
                remove_stale_temporaries(run_dir)
            try:
                run_dir.mkdir(parents=True, exist_ok=True)
                write_marker(run_dir, self.plan.kind)
            except BaseException:
                self.give_back()
                raise
        return self

    def keep_new(self) -> None:
        """The new run saved what makes it a run: the old one is no longer needed."""
        if self.kept:
            return
        self.kept = True
        if self.is_main and self.aside is not None:
            shutil.rmtree(self.aside, ignore_errors=True)

    def give_back(self) -> bool:
        """Put the moved-aside folder back where it was (True if there was one)."""
        if not self.is_main or self.aside is None or not self.aside.exists():
            return False
        shutil.rmtree(self.plan.run_dir, ignore_errors=True)
        self.aside.rename(self.plan.run_dir)
        return True

    def __exit__(self, kind, error, tb) -> bool:
        if error is None:
            self.keep_new()
            return False
        if self.kept or not self.give_back():
            return False
        if isinstance(error, (ValueError, OSError)) and not isinstance(error, RestoredError):
            raise RestoredError(f"{message(error)}; the {self.plan.run_dir.name} it was to replace is back in "
                                f"{self.plan.run_dir}, unchanged") from error
        return False
