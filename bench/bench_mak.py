"""Speed of MAK's sampling math (a benchmark, not a test).

    python bench/bench_mak.py [--quick] [--out runs/bench/bench_mak.json]
    python bench/bench_mak.py --devices cuda --ecle_n 100000   # a GPU at the papers' sizes, no CPU part

K-center: ``sampling.mak.k_center_greedy`` picking K from C candidates with N covered items (random normal
features, d dims), on the CPU and on CUDA when there is one; also the two pieces behind its choice of
path: building the candidate Gram matrix, and one step of the matrix-vector alternative.
The release's K-center re-concatenates the covered set at every step and scans all unpicked candidates
against it; ``release_k_center`` below re-implements that loop, is timed for a few steps, and is scaled to
K steps by its per-step cost: step s multiplies the C - s unpicked candidates by the N + s covered rows, so

    scaled = measured * sum_{s<K} (C - s)(N + s) / sum_{s<S} (C - s)(N + s)   (S = steps measured).

ECLE: ``sampling.mak.ecle`` on N random pool items with R passes (R(R-1)/2 pairs x repeats), d dims,
batch B, scaled linearly to seconds per 100,000 items (the work is proportional to the number of batches).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
import torch.nn.functional as F

from sampling.mak import _gram, _unit, ecle, k_center_greedy
from utils.checkpoint import atomic_write


@torch.no_grad()
def release_k_center(initial: torch.Tensor, pool: torch.Tensor, steps: int, batch_size: int = 10000) -> list[int]:
    """The released greedy loop, for timing: every step rebuilds covered = [initial; picked], then scans
    the unpicked candidates in batches for their largest similarity to it and picks the smallest."""
    initial, pool = F.normalize(initial, dim=-1), F.normalize(pool, dim=-1)
    picked: list[int] = []
    for _ in range(steps):
        covered = torch.cat([initial, pool[picked]])
        mask = np.ones(len(pool), dtype=bool)
        mask[picked] = False
        rest = np.nonzero(mask)[0]
        nearest = torch.cat([(pool[rest[i:i + batch_size]] @ covered.t()).max(1)[0]
                             for i in range(0, len(rest), batch_size)])
        picked.append(int(rest[int(torch.argmin(nearest))]))
    return picked


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str):
    synchronize(device)
    start = time.perf_counter()
    result = fn()
    synchronize(device)
    return time.perf_counter() - start, result


def gemm_gflops(device: str) -> float:
    """Float32 matmul throughput now, to read the timings against (a busy machine gives a fraction of peak)."""
    a, b = torch.randn(4096, 2048, device=device), torch.randn(2048, 4096, device=device)
    a @ b  # warm-up
    seconds, _ = timed(lambda: a @ b, device)
    return 2 * 4096 * 2048 * 4096 / seconds / 1e9


def bench_k_center(args, device: str, release_steps: int) -> dict:
    g = torch.Generator().manual_seed(0)
    candidates = torch.randn(args.candidates, args.dim, generator=g)
    covered = torch.randn(args.covered, args.dim, generator=g)
    c, n, k = args.candidates, args.covered, args.k
    ours, picks = timed(lambda: k_center_greedy(candidates, covered, k, device=device), device)

    x = _unit(candidates, device)
    gram_s, gram = timed(lambda: _gram(x, 4096), device)
    del gram
    probe = min(200, k)

    def matvec_steps():
        best = torch.zeros(c, device=x.device)
        for p in range(probe):
            torch.maximum(best, x @ x[p], out=best)
    matvec_s, _ = timed(matvec_steps, device)

    release_s, release_picks = timed(lambda: release_k_center(covered.to(device), candidates.to(device),
                                                              release_steps), device)
    work = lambda steps: sum((c - s) * (n + s) for s in range(steps))
    scaled = release_s * work(k) / work(release_steps)
    return {"device": device, "C": c, "N": n, "K": k, "d": args.dim, "ours_s": ours,
            "gram_build_s": gram_s, "matvec_step_ms": 1000 * matvec_s / probe,
            "matvec_loop_est_s": matvec_s / probe * k,
            "release_steps": release_steps, "release_measured_s": release_s, "release_scaled_s": scaled,
            "speedup": scaled / ours, "first_picks_agree": release_picks == picks[:release_steps].tolist()}


def bench_ecle(args, device: str) -> dict:
    rng = np.random.default_rng(0)
    views = [rng.standard_normal((args.ecle_n, args.ecle_dim), dtype=np.float32) for _ in range(args.passes)]
    seconds, values = timed(lambda: ecle(views, batch_size=args.batch_size, repeats=args.repeats, device=device),
                            device)
    assert np.isfinite(values).all()
    pairs = args.passes * (args.passes - 1) // 2
    return {"device": device, "N": args.ecle_n, "R": args.passes, "pairs": pairs, "repeats": args.repeats,
            "d": args.ecle_dim, "B": args.batch_size, "measured_s": seconds,
            "per_100k_s": seconds * 100_000 / args.ecle_n}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes (seconds), to check the script runs")
    p.add_argument("--candidates", type=int, default=15000, help="K-center candidates C")
    p.add_argument("--covered", type=int, default=12000, help="K-center covered (ID) items N")
    p.add_argument("--k", type=int, default=10000, help="K-center picks K")
    p.add_argument("--dim", type=int, default=2048, help="backbone feature dimension for K-center")
    p.add_argument("--release_steps", type=int, default=3,
                   help="steps of the release's K-center loop timed on the CPU (each costs C*N*d)")
    p.add_argument("--release_steps_cuda", type=int, default=200, help="the same on CUDA")
    p.add_argument("--ecle_n", type=int, default=20000, help="pool items for the ECLE timing")
    p.add_argument("--passes", type=int, default=10, help="augmented passes R for ECLE")
    p.add_argument("--repeats", type=int, default=10, help="ECLE repeats per pair")
    p.add_argument("--ecle_dim", type=int, default=128, help="projection dimension for ECLE")
    p.add_argument("--batch_size", type=int, default=512, help="ECLE batch size")
    p.add_argument("--parts", default="kcenter,ecle", help="comma-separated parts to run: kcenter, ecle")
    p.add_argument("--devices", default="auto",
                   help="comma-separated devices to measure (cpu, cuda); auto: the CPU, and CUDA when present")
    p.add_argument("--out", default="runs/bench/bench_mak.json", help="JSON file for the results")
    args = p.parse_args()
    if args.quick:
        args.candidates, args.covered, args.k, args.dim = 1500, 1200, 1000, 256
        args.release_steps, args.release_steps_cuda = 20, 20
        args.ecle_n, args.passes, args.repeats = 2000, 4, 2
    parts = set(args.parts.split(","))
    if not parts or not parts <= {"kcenter", "ecle"}:
        raise SystemExit(f"error: --parts must name kcenter and/or ecle, got {args.parts!r}")
    if not 0 < args.k < args.candidates or not 0 < args.release_steps <= args.k:
        raise SystemExit("error: need 0 < --k < --candidates and 0 < --release_steps <= --k")

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else []) if args.devices == "auto" else \
        args.devices.split(",")
    if not devices or not set(devices) <= {"cpu", "cuda"}:
        raise SystemExit(f"error: --devices must name cpu and/or cuda, got {args.devices!r}")
    if "cuda" in devices and not torch.cuda.is_available():
        raise SystemExit("error: --devices cuda: no CUDA device is available")
    results = {"threads": torch.get_num_threads(), "torch": torch.__version__, "k_center": [], "ecle": [],
               "device_name": torch.cuda.get_device_name() if "cuda" in devices else None,
               "date": time.strftime("%Y-%m-%d %H:%M"),
               "gemm_gflops_before": {d: gemm_gflops(d) for d in devices}}
    for device in devices:
        steps = args.release_steps_cuda if device == "cuda" else args.release_steps
        if "kcenter" in parts:
            results["k_center"].append(bench_k_center(args, device, min(steps, args.k)))
        if "ecle" in parts:
            results["ecle"].append(bench_ecle(args, device))

    results["gemm_gflops_after"] = {d: gemm_gflops(d) for d in devices}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; float32 matmul GFLOPS before / after: "
          + ", ".join(f"{d} {results['gemm_gflops_before'][d]:.0f} / {results['gemm_gflops_after'][d]:.0f}"
                      for d in devices))
    if results["k_center"]:
        print("\nK-center: K picks from C candidates, N covered, d dims (seconds)")
        print("| device | C | N | K | d | ours | Gram build | mat-vec step (ms) | mat-vec loop est. | "
              "release steps | release measured | release scaled to K | release / ours | first picks agree |")
        print("|---" * 14 + "|")
        for r in results["k_center"]:
            print(f"| {r['device']} | {r['C']} | {r['N']} | {r['K']} | {r['d']} | {r['ours_s']:.2f} | "
                  f"{r['gram_build_s']:.2f} | {r['matvec_step_ms']:.2f} | {r['matvec_loop_est_s']:.1f} | "
                  f"{r['release_steps']} | {r['release_measured_s']:.2f} | {r['release_scaled_s']:.0f} | "
                  f"{r['speedup']:.0f}x | {r['first_picks_agree']} |")
        print("release scaled = measured * sum_{s<K} (C-s)(N+s) / sum_{s<S} (C-s)(N+s)")
    if results["ecle"]:
        print("\nECLE: R passes, all pairs x repeats, batch B (seconds)")
        print("| device | N | R | pairs x repeats | d | B | measured | per 100,000 items |")
        print("|---|---|---|---|---|---|---|---|")
        for r in results["ecle"]:
            print(f"| {r['device']} | {r['N']} | {r['R']} | {r['pairs']} x {r['repeats']} | {r['d']} | {r['B']} | "
                  f"{r['measured_s']:.1f} | {r['per_100k_s']:.0f} |")
        print("per 100,000 = measured * 100000 / N")
    atomic_write(args.out, lambda f: f.write(json.dumps(results, indent=2).encode()))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
