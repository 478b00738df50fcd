"""Run a launcher: ``cmds/launch.py LAUNCHER DATASET SCRIPT [flags]`` (what cmds/shell_scrips/*.sh call).

The plan's commands are printed one a line. ``--dry_run`` stops there (and warns on stderr about every path a
step reads that does not exist). Otherwise the inputs that another step makes and the split files are checked
before anything is written; then each command is appended to ``bash_log.txt`` in the run folder and run from the
repository root; the first failing command ends the launcher with its exit status.
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from data import registry
from launcher.options import HelpRequested, UsageError, parse, usage
from launcher.plans import LAUNCHERS, Context, Env, LaunchError, Plan


def slurm_first_host(environ) -> str | None:
    """The first host of the SLURM job, by ``scontrol show hostnames`` (None outside SLURM)."""
    nodes = environ.get("SLURM_JOB_NODELIST")
    if not nodes or shutil.which("scontrol") is None:
        return None
    out = subprocess.run(["scontrol", "show", "hostnames", nodes], capture_output=True, text=True).stdout.split()
    return out[0] if out else None


def build(launcher: str, dataset: str, prog: str, argv: list[str], env: Env) -> tuple[Plan, bool]:
    """(the plan, --dry_run); raises HelpRequested (with the usage), UsageError or LaunchError."""
    spec = LAUNCHERS[launcher]
    entry = registry.dataset(dataset)
    flags = spec.flags()
    text = usage(prog, spec.description.format(dataset=entry.mak.release_name if entry.mak else entry.name), flags,
                 Context(entry, env))
    try:
        given, dry_run = parse(flags, argv)
        return spec.plan(entry, given, env), dry_run
    except HelpRequested:
        raise HelpRequested(text) from None
    except UsageError as e:
        raise UsageError(f"{e}\n{text}") from None


def missing(plan: Plan) -> list:
    """The needs of the plan's steps that do not exist and that no earlier step makes, in order."""
    made, found, seen = set(), [], set()
    for step in plan.steps:
        for need in step.needs:
            if need.path not in made and need.path not in seen and not os.path.exists(need.path):
                found.append(need)
                seen.add(need.path)
        made.update(step.makes)
    return found


def refusal(plan: Plan) -> str | None:
    """The error of a real run that cannot work: an input another launcher step makes, then a split file."""
    absent = missing(plan)
    for kind in ("product", "split"):
        for need in absent:
            if need.kind == kind:
                return need.missing
    return None


def execute(plan: Plan, dry_run: bool) -> int:
    if dry_run:
        for need in missing(plan):
            print(f"warning: {need.what} {need.path} does not exist", file=sys.stderr)
        for command in plan.commands():
            print(shlex.join(command))
        return 0
    error = refusal(plan)
    if error:
        raise LaunchError(error)
    for command in plan.commands():
        line = shlex.join(command)
        print(line, flush=True)
        os.makedirs(plan.run_dir, exist_ok=True)
        with open(os.path.join(plan.run_dir, "bash_log.txt"), "a") as log:
            log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")
        status = subprocess.call(command, cwd=registry.REPO_ROOT)
        if status:
            return status if status > 0 else 128 - status  # killed by a signal: the shell's convention
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    launcher, dataset, script, *rest = argv
    env = Env(os.getcwd(), dict(os.environ), slurm_first_host(os.environ))
    try:
        plan, dry_run = build(launcher, dataset, Path(script).name, rest, env)
        return execute(plan, dry_run)
    except HelpRequested as e:
        try:
            print(e)
        except BrokenPipeError:  # --help | head
            pass
        return 0
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except LaunchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
