"""Cost of COLT's tailness update relative to one SimCLR training step (a benchmark, not a test).

    python bench/tailness_cost.py [--batch_size 512] [--width 16] [--repeats 5]

Times, on one fixed batch, (a) a full training step: forward of 2B views, NT-Xent, backward, SGD step;
(b) the tailness update that COLT adds: top-k of the (2B, 2B) softmax and the EMA scatter.
Both are measured in the same process, interleaved, and the medians compared.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
import torch.nn.functional as F

from losses import nt_xent_logits
from models import build_simclr
from sampling.tailness import TailnessTracker, raw_tailness


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch_size", type=int, default=512, help="image pairs per step")
    p.add_argument("--width", type=int, default=16, help="ResNet-18 first-stage width")
    p.add_argument("--repeats", type=int, default=5, help="timed repetitions of each")
    p.add_argument("--k", type=int, default=10, help="--k_largest_logits")
    p.add_argument("--num_samples", type=int, default=11165, help="size of the ID set (score vector)")
    args = p.parse_args()

    torch.manual_seed(0)
    model = build_simclr("res18", width=args.width)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = torch.rand(2 * args.batch_size, 3, 32, 32)
    tracker = TailnessTracker(args.num_samples)
    index = torch.randperm(args.num_samples)[:args.batch_size]

    def train_step():
        z = model(x)
        logits, positive = nt_xent_logits(z[:args.batch_size], z[args.batch_size:], 0.2)
        loss = F.cross_entropy(logits, positive)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return logits.detach()

    logits = train_step()  # warm-up
    step_times, update_times = [], []
    for epoch in range(args.repeats):
        start = time.perf_counter()
        logits = train_step()
        step_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        tracker.update(index, raw_tailness(logits, args.k), epoch)
        update_times.append(time.perf_counter() - start)
    step, update = statistics.median(step_times), statistics.median(update_times)
    print(f"batch {args.batch_size} pairs, ResNet-18 width {args.width}, {torch.get_num_threads()} threads")
    print(f"training step      {step * 1000:9.1f} ms (median of {args.repeats})")
    print(f"tailness update    {update * 1000:9.2f} ms")
    print(f"update / step      {100 * update / step:9.3f} %")


if __name__ == "__main__":
    main()
