"""A pre-training run's state across starts: its flags of the run group, the run directory it may claim,
what its checkpoint holds, and the checks a ``--resume`` must pass.

The rules of run directories live in ``utils.run_dir`` and those of the resume comparison in
``utils.resume``; this module applies them to ``train_simclr.py``'s settings, its method (anything with a
``network``) and its plug-ins (anything with ``key``, ``state_dict``, ``load_state_dict`` and ``resume``).
"""
from __future__ import annotations

from pathlib import Path

import torch.nn as nn

from utils import distributed
from utils import run_dir as run_dirs
from utils.checkpoint import check_training_state, load_checkpoint, rng_state, save_checkpoint, set_rng_state, \
    shape_mismatches
from utils.errors import message
from utils.logger import write_args
from utils.precision import DEFAULT_PRECISION, PRECISIONS, PRECISION_HELP
from utils.resume import check_inputs_unchanged, check_settings, saved_args

# Flags that --resume accepts with another value than the run's: none of them changes the weights, the
# data order or the OOD selection. Every other saved setting must match (--epochs: see --extend_epochs).
# Paths (--data, --ood_data, --ood_root) may change because data move; their content must not (it is
# fingerprinted, utils.resume).
RESUME_MAY_CHANGE = ("num_workers", "print_freq", "save_freq", "knn_every", "knn_k", "testSplit",
                     "embed_batch_size", "device", "data", "ood_data", "ood_root", "save_dir", "experiment",
                     "resume", "checkpoint", "overwrite", "extend_epochs", "check_only")


def add_arguments(parser) -> None:
    """The run group: where it goes, its seed, starting it again or continuing it, saving, the device."""
    g = parser.add_argument_group("run")
    g.add_argument("--save-dir", "--save_dir", dest="save_dir", default="checkpoints",
                   help="folder that holds run directories")
    g.add_argument("--seed", type=int, default=1, help="seed of initialisation, data order and augmentation")
    g.add_argument("--resume", action="store_true",
                   help="continue the run in <save-dir>/<experiment> from its model.pt (or --checkpoint). Only "
                        f"these flags may differ from the run's: {', '.join('--' + n for n in RESUME_MAY_CHANGE)}; "
                        "any other difference, and any change in the content of its inputs (splits, pool, extra "
                        "images), is refused. A directory without model.pt (stopped before its first "
                        "checkpoint) starts again")
    g.add_argument("--extend_epochs", action="store_true",
                   help="with --resume: accept a larger --epochs than the run's. The cosine schedule is then "
                        "stretched to the new total from the current step on, so the remaining learning rates "
                        "differ from both the original run and a run planned that long from the start")
    g.add_argument("--checkpoint", default=None, help="with --resume: the checkpoint to continue from")
    g.add_argument("--overwrite", action="store_true",
                   help="start an existing run of the same name again: once every input is checked, the old "
                        "run directory is moved aside, removed when the new run saves its first checkpoint, "
                        "and put back if the new run fails before that")
    g.add_argument("--check_only", action="store_true",
                   help="check every input and setting (data, pool, splits, checkpoint), then exit without "
                        "writing anything (the launchers do this before starting several processes)")
    g.add_argument("--save_freq", type=int, default=100, help="also keep model_<epoch>.pt every this many epochs")
    g.add_argument("--print_freq", type=int, default=10, help="log every this many steps")
    g.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"], help="training device")
    g.add_argument("--precision", default=DEFAULT_PRECISION, choices=PRECISIONS, help=PRECISION_HELP)


def plan_run_dir(args, info: distributed.DistInfo) -> tuple[Path, str]:
    """(run directory, mode), decided on the main process; checks only. A run is there once it saved a
    checkpoint; args.json or log.txt alone are a start that never finished an epoch (mode "restart"), a
    launcher's bash_log.txt alone is nothing. Raises ValueError."""
    plan = None
    if info.is_main:
        try:
            planned = run_dirs.plan_run_dir(
                args.save_dir, args.experiment, "pretraining", resume=args.resume, overwrite=args.overwrite,
                restart_only=True, dry_run=args.check_only,
                finished=lambda d: bool(args.resume and args.checkpoint) or (d / "model.pt").is_file(),
                started=lambda d: any((d / n).exists() for n in ("args.json", "log.txt")),
                already=f"run directory {Path(args.save_dir) / args.experiment} already holds a run: use --resume "
                        f"to continue it, --overwrite to replace it, or another experiment name")
            plan = (planned, None)
        except (OSError, ValueError) as e:
            plan = (None, message(e))
    planned, error = distributed.broadcast_object(plan)
    if error:
        raise ValueError(error)
    return planned.run_dir, planned.mode


def resume_state(args, run_dir: Path, mode: str) -> tuple[dict | None, Path | None]:
    """The checkpoint to continue from (on the CPU: RNG states must stay CPU tensors), or (None, None)."""
    if mode != "resume":
        return None, None
    path = Path(args.checkpoint) if args.checkpoint else run_dir / "model.pt"
    return check_training_state(load_checkpoint(path, map_location="cpu"), path), path


def check_resume(args, network: nn.Module, state: dict, path: Path, plugin_keys) -> None:
    """Refuse a checkpoint that does not fit the network, lacks a plug-in's state, or whose run had other
    trajectory settings or read other data (ValueError, one line)."""
    check_architecture(network, state, path, args)
    for key in plugin_keys:
        if key not in state:
            raise ValueError(f"{path} holds no {key} state: that plug-in was not on in its run")
    check_settings(saved_args(args), state.get("args") or {}, RESUME_MAY_CHANGE, args.extend_epochs)
    check_inputs_unchanged(state.get("inputs") or {}, args.input_fingerprints, path)


def check_architecture(network: nn.Module, state: dict, path: Path, args) -> None:
    """One line instead of load_state_dict's size-mismatch traceback (ValueError)."""
    mismatches = shape_mismatches(network.state_dict(), state["state_dict"])
    if mismatches:
        saved = state.get("args") or {}
        built = f"--model {args.model} --width {args.width} --output_ch {args.output_ch}"
        if {"model", "width", "output_ch"} <= saved.keys() and \
                (saved["model"], saved["width"], saved["output_ch"]) != (args.model, args.width, args.output_ch):
            raise ValueError(f"checkpoint {path} was trained with --model {saved['model']} --width "
                             f"{saved['width']} --output_ch {saved['output_ch']}; this run builds {built}")
        raise ValueError(f"checkpoint {path} does not fit this run's {built} ({len(mismatches)} tensors "
                         f"differ, e.g. {mismatches[0]})")


def checkpoint_state(network, optimizer, scheduler, hooks, epoch: int, args) -> dict:
    """The weights, optimiser, schedule, epoch, RNG states, settings, input fingerprints and every
    plug-in's state (under its key)."""
    state = {"state_dict": network.state_dict(), "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict(), "epoch": epoch, "rng": rng_state(), "args": saved_args(args),
             "inputs": getattr(args, "input_fingerprints", {})}
    hook_states = {hook.key: hook.state_dict() for hook in hooks}
    state.update({key: value for key, value in hook_states.items() if value})
    return state


def restore(state: dict, network, optimizer, scheduler, hooks, loop, total_steps: int) -> int:
    """Load a checkpoint into the run (``loop``: what the plug-ins' ``resume`` sees); returns its epoch."""
    network.load_state_dict(state["state_dict"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    for hook in hooks:
        if hook.state_dict():
            hook.load_state_dict(state[hook.key])
        hook.resume(loop)  # COLT: train on its current selection again
    planned = (state.get("args") or {}).get("epochs", loop.args.epochs)
    if loop.args.epochs != planned:  # --extend_epochs: the schedule's lambda already counts the new total
        for group, base, factor in zip(optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas):
            group["lr"] = base * factor(scheduler.last_epoch)
        loop.logger.info(f"--extend_epochs: {planned} -> {loop.args.epochs} epochs; the cosine schedule now ends "
                         f"at step {total_steps}, so the remaining learning rates differ from the planned run's")
    return state["epoch"]


def save_run(run_dir: Path, state: dict, args, ran: dict, epoch: int) -> None:
    """model.pt (latest) always; model_<epoch>.pt every --save_freq epochs; args.json beside them. The
    snapshot is written before model.pt: a run killed between the two resumes from the previous epoch and
    writes the snapshot again, so no snapshot is ever skipped."""
    write_args(args, run_dir / "args.json", ran)
    if epoch % args.save_freq == 0 or epoch == args.epochs:
        save_checkpoint(state, run_dir / f"model_{epoch}.pt")
    save_checkpoint(state, run_dir / "model.pt")


class NonFiniteError(Exception):
    """The loss or the weights stopped being finite: nothing of this epoch may be saved."""


class ClaimedRun:
    """The run directory while a run owns it (``with ClaimedRun(...) as run``): claimed (an old run moved
    aside with --overwrite), logged to, and on failure one ``error:`` line, with the old run put back if the
    new one had saved nothing yet. Call ``saved()`` after each checkpoint. ``describe(error)`` turns an
    error into its one-line text."""

    def __init__(self, run_dir: Path, mode: str, info: distributed.DistInfo, describe=message):
        from utils.logger import RunLogger
        self.run_dir, self.mode, self.info, self.describe = run_dir, mode, info, describe
        self.claim = run_dirs.RunDirClaim(run_dirs.RunPlan(run_dir, "pretraining", mode), is_main=info.is_main)
        self.logger_class, self.logger, self.saved_once = RunLogger, None, False

    def __enter__(self) -> "ClaimedRun":
        try:
            self.claim.__enter__()
        except (OSError, ValueError) as e:
            raise SystemExit(f"error: {message(e)}") from None
        distributed.barrier()
        try:
            self.logger = self.logger_class(self.run_dir, enabled=self.info.is_main)
        except BaseException as e:
            self.__exit__(type(e), e, None)
            raise
        if self.claim.aside is not None:
            self.logger.info(f"--overwrite: the old run is kept at {self.claim.aside} until this run saves its first "
                             f"checkpoint")
        if self.mode == "restart":
            self.logger.info(f"{self.run_dir} held no checkpoint (an earlier start stopped before its first epoch "
                             f"ended): starting the run again")
        return self

    def saved(self) -> None:
        if not self.saved_once:
            self.saved_once = True
            self.claim.keep_new()

    def __exit__(self, kind, error, tb) -> bool:
        if self.logger is not None and error is None:
            self.logger.info(f"done: outputs in {self.run_dir.resolve()}")
        if self.logger is not None:
            self.logger.close()
        if error is None:
            return False
        back = not self.saved_once and self.claim.give_back()
        if isinstance(error, NonFiniteError):
            last = self.run_dir / "model.pt"
            kept = (f"the run it was to replace is back in {self.run_dir}, unchanged" if back else
                    f"{last} is kept unchanged" if last.is_file() else "no checkpoint was saved")
            raise SystemExit(f"error: {error}; stopped before saving: {kept} (lower --lr or raise "
                             f"--temperature)") from None
        if isinstance(error, (OSError, ValueError)):
            raise SystemExit(f"error: {self.describe(error)}" + (f"; the run it was to replace is back in "
                                                                  f"{self.run_dir}, unchanged" if back else "")) \
                from None
        return False
