"""Contrastive frameworks, one module each, behind one registry, and BCL's plug-in.

``--prune`` selects SDCLR (else SimCLR); ``--bcl`` adds BCL's boosted augmentation to either (BCL-I on SimCLR,
BCL-D on SDCLR); COLT (``sampling.colt``) and MAK's extra images plug into any of them.
"""
from __future__ import annotations

import math

from methods.base import Batch, Hook, Method, StepOutput
from methods.bcl import BCL, boosted_strengths
from methods.sdclr import SDCLR
from methods.simclr import SimCLR

METHODS = {"simclr": SimCLR, "sdclr": SDCLR}

__all__ = ["BCL", "Batch", "Hook", "METHODS", "Method", "SDCLR", "SimCLR", "StepOutput", "add_arguments",
           "boosted_strengths", "build_method", "check_args", "method_name"]


def method_name(args) -> str:
    """The registry key the flags select."""
    return "sdclr" if args.prune else "simclr"


def add_arguments(parser) -> None:
    """The flags of SDCLR and BCL, with the releases' names and defaults."""
    g = parser.add_argument_group("SDCLR: contrast with a pruned copy of the network (off unless --prune)")
    g.add_argument("--prune", action="store_true",
                   help="SDCLR: view 2 goes through a copy of the network pruned by global weight magnitude "
                        "(re-pruned every epoch), sharing the unpruned weights")
    g.add_argument("--prune_percent", type=float, default=None,
                   help="fraction of the convolution weights the pruned branch zeroes (default 0.9 for 32x32 "
                        "data, 0.3 for ImageNet-100 / Places)")
    g.add_argument("--prune_dual_bn", action="store_true",
                   help="give the pruned branch BatchNorm layers of its own (backbone and head), as the SDCLR "
                        "release's recommended setting; probes use the dense branch's")
    g = parser.add_argument_group("BCL: augmentation boosted by the momentum loss (off unless --bcl)")
    g.add_argument("--bcl", action="store_true",
                   help="BCL: RandAugment each image's views at a strength that grows with its momentum loss "
                        "(BCL-I with SimCLR, BCL-D with --prune)")
    g.add_argument("--rand_k", type=int, default=1,
                   help="RandAugment ops per view: 1 = BCL-I's rule (magnitude 10 + 20 w), 2 or more = BCL-D's "
                        "(5 + 25 w u, u uniform per image)")
    g.add_argument("--rand_strength", type=int, default=30, help="the largest RandAugment magnitude (of 30)")
    g.add_argument("--momentum_loss_beta", type=float, default=0.97, help="EMA factor of the per-image loss")
    g.add_argument("--bcl_ood_strength", type=float, default=0.0,
                   help="RandAugment strength of OOD images (COLT's, MAK's extra images), which have no momentum "
                        "loss of their own (0: plain views)")


def check_args(args) -> list[str]:
    """What is wrong with the method flags (empty if nothing)."""
    errors = []
    if args.prune and not (math.isfinite(args.prune_percent) and 0 <= args.prune_percent < 1):
        errors.append(f"--prune_percent must be in [0, 1), got {args.prune_percent}")
    if args.prune_dual_bn and not args.prune:
        errors.append("--prune_dual_bn doubles the pruned branch's BatchNorm: add --prune")
    if args.rand_k < 1 or not 1 <= args.rand_strength <= 30:
        errors.append(f"--rand_k must be >= 1 and --rand_strength in [1, 30], got {args.rand_k} and "
                      f"{args.rand_strength}")
    if not 0 <= args.momentum_loss_beta < 1 or not 0 <= args.bcl_ood_strength <= 1:
        errors.append("--momentum_loss_beta must be in [0, 1) and --bcl_ood_strength in [0, 1]")
    return errors


def build_method(args, network) -> Method:
    """The method the flags select, over ``network`` (build_simclr's, or models.sdclr's two-branch one)."""
    if method_name(args) == "sdclr":
        return SDCLR(network, args.temperature, args.precision, args.prune_percent)
    return SimCLR(network, args.temperature, args.precision)
