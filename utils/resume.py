"""What --resume compares: the run's settings, and the content of every file it reads.

Plain functions over dicts, so any entry point with a checkpoint of its settings can use them.
"""
from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path


def saved_args(args) -> dict:
    """The settings a checkpoint records: every flag of a plain type."""
    return {k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool, type(None)))}


def resume_differences(new: dict, saved: dict, may_change=(), extend_epochs: bool = False) -> list[str]:
    """``--flag new (run: old)`` for each setting in ``new`` that differs from ``saved`` and is not in
    ``may_change``. Generic over the keys: a key the saved settings lack counts as unchanged. With
    ``extend_epochs`` a larger ``epochs`` is accepted."""
    out = []
    for key, value in new.items():
        if key in may_change or key not in saved:
            continue
        old = saved[key]
        if key == "epochs" and extend_epochs and isinstance(old, int) and isinstance(value, int) and value > old:
            continue
        same = value == old or (isinstance(value, float) and isinstance(old, float) and math.isnan(value)
                                and math.isnan(old))
        if not same:
            out.append(f"--{key} {value} (run: {old})")
    return out


def check_settings(new: dict, saved: dict, may_change=(), extend_epochs: bool = False) -> None:
    """ValueError listing the settings that differ from the run's and may not."""
    differences = resume_differences(new, saved, may_change, extend_epochs)
    if differences:
        hint = " (a larger --epochs needs --extend_epochs)" if any(d.startswith("--epochs ") for d in differences) \
            else ""
        shown = ", ".join("--" + n for n in list(may_change)[:8])
        raise ValueError(f"--resume: these settings differ from the run's: {', '.join(differences)}; only "
                         f"{shown}{', ...' if len(may_change) > 8 else ''} may change{hint}")


# ---- the content of the inputs ---------------------------------------------------------------------------

def fingerprint(path: str | os.PathLike, block: int = 1 << 22) -> dict:
    """{"path", "sha256", "bytes"} of a file's content; of a folder, the SHA-256 of its sorted listing of
    (relative path, size) of every file under it (images are not read)."""
    path = Path(path).expanduser()
    digest = hashlib.sha256()
    if path.is_dir():
        total = 0
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            size = file.stat().st_size
            total += size
            digest.update(f"{file.relative_to(path).as_posix()}\0{size}\n".encode())
        return {"path": str(path), "sha256": digest.hexdigest(), "bytes": total, "listing": True}
    with open(path, "rb") as f:
        while chunk := f.read(block):
            digest.update(chunk)
    return {"path": str(path), "sha256": digest.hexdigest(), "bytes": path.stat().st_size}


def input_fingerprints(files: dict) -> dict:
    """{flag: fingerprint} of every named input file or folder (None entries are left out)."""
    return {flag: fingerprint(path) for flag, path in files.items() if path is not None}


def changed_inputs(saved: dict, current: dict) -> list[str]:
    """The inputs whose content differs between the run's fingerprints and today's. An input the run
    did not record (an older checkpoint) is not compared; one it recorded and this run lacks is a change."""
    out = []
    for flag, old in saved.items():
        new = current.get(flag)
        if not isinstance(old, dict) or "sha256" not in old:
            continue
        if new is None:
            out.append(f"--{flag} (run: {old.get('path')}; now none)")
        elif new["sha256"] != old["sha256"]:
            what = "listing" if new.get("listing") else "content"
            out.append(f"--{flag} {new['path']} ({what} changed since the run started: sha256 "
                       f"{new['sha256'][:12]}, run: {old['sha256'][:12]})")
    return out


def check_inputs_unchanged(saved: dict, current: dict, path) -> None:
    changed = changed_inputs(saved or {}, current)
    if changed:
        raise ValueError(f"--resume: the inputs of {path} changed: {'; '.join(changed)}; the run would continue "
                         f"on other data: restore them, or start a new run")
