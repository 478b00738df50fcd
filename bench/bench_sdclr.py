r"""Cost of one SDCLR training step against one SimCLR step, and against the release's two-pass step.

    python bench/bench_sdclr.py                       # this CPU: ResNet-18 width 16, batch 64
    python bench/bench_sdclr.py --device cuda --width 64 --batch_size 512 --rounds 20

Each step is forward + backward + SGD on device-resident random 32x32 views (bf16 autocast and
channels_last on CUDA, as train_simclr):
  simclr    2B views through one network (build_simclr), NT-Xent;
  sdclr     B views through the dense branch and B through the pruned one in one forward (build_sdclr), one
            backward;
  two_pass  the release's step (prune/prune_simCLR.py): the pruned branch without gradient, the dense branch
            and a backward, the pruned branch again and a second backward.
The three run in turn in every round, so a load change on a shared machine touches all of them; the table
gives each one's median and fastest round and their ratios to simclr's (on a loaded machine the fastest is
the steadier figure: load only adds time). The epoch-start mask update (``update_masks``) is timed apart.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from losses.nt_xent import nt_xent
from models import build_sdclr, build_simclr
from utils.precision import autocast


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="device to measure")
    p.add_argument("--model", default="res18", choices=["res18", "res50"], help="ResNet")
    p.add_argument("--width", type=int, default=16, help="ResNet width (64 is the papers')")
    p.add_argument("--batch_size", type=int, default=64, help="B: view pairs per step (the papers': 512)")
    p.add_argument("--rounds", type=int, default=5, help="timed rounds (each times every step once)")
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    p.add_argument("--prune_percent", type=float, default=0.9, help="pruned fraction of the conv weights")
    p.add_argument("--prune_dual_bn", action=argparse.BooleanOptionalAction, default=True,
                   help="SDCLR with a BatchNorm set per branch")
    p.add_argument("--precision", default="bf16", choices=["bf16", "fp32"], help="autocast on CUDA (CPU: fp32)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    return p.parse_args(argv)


def simclr_step(net, optimizer, x1, x2, device, precision):
    with autocast(device, precision):
        z = net(torch.cat([x1, x2]))
    loss = nt_xent(z[:len(x1)].float(), z[len(x1):].float())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def sdclr_step(net, optimizer, x1, x2, device, precision):
    with autocast(device, precision):
        z1, z2 = net(x1, x2)
    loss = nt_xent(z1.float(), z2.float())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def two_pass_step(net, optimizer, x1, x2, device, precision):
    optimizer.zero_grad(set_to_none=True)
    with autocast(device, precision):
        with torch.no_grad():
            z2 = net.forward_branch(x2, pruned=True)
        z1 = net.forward_branch(x1, pruned=False)
    nt_xent(z1.float(), z2.float().detach()).backward()
    with autocast(device, precision):
        z2 = net.forward_branch(x2, pruned=True)
    nt_xent(z1.float().detach(), z2.float()).backward()
    optimizer.step()


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)
    torch.manual_seed(0)
    nets = {"simclr": build_simclr(args.model, width=args.width),
            "sdclr": build_sdclr(args.model, width=args.width, dual_bn=args.prune_dual_bn),
            "two_pass": build_sdclr(args.model, width=args.width, dual_bn=args.prune_dual_bn)}
    steps = {"simclr": simclr_step, "sdclr": sdclr_step, "two_pass": two_pass_step}
    optimizers = {}
    for name, net in nets.items():
        net = net.to(device).train()
        if device.type == "cuda":
            net = net.to(memory_format=torch.channels_last)
        nets[name] = net
        optimizers[name] = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
    start = time.perf_counter()
    nets["sdclr"].update_masks(args.prune_percent)
    sync(device)
    mask_seconds = time.perf_counter() - start
    nets["two_pass"].update_masks(args.prune_percent)

    def views():
        x = torch.randn(2, args.batch_size, 3, 32, 32, device=device)
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        return x[0], x[1]

    times = {name: [] for name in nets}
    for round_ in range(args.warmup + args.rounds):
        for name in nets:
            x1, x2 = views()
            sync(device)
            start = time.perf_counter()
            steps[name](nets[name], optimizers[name], x1, x2, device, args.precision)
            sync(device)
            if round_ >= args.warmup:
                times[name].append(time.perf_counter() - start)
    median = {name: statistics.median(t) for name, t in times.items()}
    fastest = {name: min(t) for name, t in times.items()}
    results = {"device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
               "model": args.model, "width": args.width, "batch_size": args.batch_size,
               "prune_percent": args.prune_percent, "dual_bn": args.prune_dual_bn, "rounds": args.rounds,
               "threads": torch.get_num_threads(), "precision": args.precision if device.type == "cuda" else "fp32",
               "median_seconds": median, "median_ratio": {n: median[n] / median["simclr"] for n in median},
               "fastest_seconds": fastest, "fastest_ratio": {n: fastest[n] / fastest["simclr"] for n in fastest},
               "update_masks_seconds": mask_seconds}
    print(f"{results['device']}: {args.model} width {args.width}, B = {args.batch_size}, "
          f"{results['threads']} threads, {args.rounds} rounds")
    print(f"  {'step':9s} {'median ms':>10s} {'x simclr':>9s} {'fastest ms':>11s} {'x simclr':>9s}")
    for name in nets:
        print(f"  {name:9s} {median[name] * 1e3:10.1f} {results['median_ratio'][name]:9.2f} "
              f"{fastest[name] * 1e3:11.1f} {results['fastest_ratio'][name]:9.2f}")
    print(f"  update_masks (once per epoch) {mask_seconds * 1e3:.1f} ms")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return results


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


if __name__ == "__main__":
    main()
