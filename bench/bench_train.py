"""Benchmark of every training stage against the model's own limit; prints a table and writes JSON.

    python bench/bench_train.py --quick          # this CPU, under 2 minutes
    python bench/bench_train.py                  # a GPU: the papers' batch 512, ResNet-18, 300K pool
    python bench/bench_train.py --kind imagenet  # a GPU: ResNet-50, batch 256, 224 px views (stages 1-3)

Stages: (1) model only: forward + backward + SGD step on device-resident random views (bf16 autocast and
channels_last on CUDA); (2) full SimCLR step with the per-image pipeline (DataLoader workers, as
train_simclr --aug_device cpu) and with the batched pipeline (--aug_device gpu), images/s and ratio to
(1); (3) SimCLR+COLT step (tailness update, distribution loss) as a ratio to the plain step; (4) one COLT
sampling round (embed ID + pool, k-means, budgets, selection) in seconds and as a fraction of one
training epoch over the same ID + budget images; (5) peak host and device memory; (6) the other methods'
steps as ratios to SimCLR's in the same run: SDCLR (one forward of both branches) and the release's
two-pass SDCLR step on the model-only views, BCL-I and BCL-D on the batched path (RandAugment at strengths
uniform in [0, 1]) against the batched SimCLR step. Also the augmentation alone per image / batched, and
--compile.

``--kind imagenet``: ResNet-50 (ImageNet stem) on 224 px views cropped from generated 256 x 256 images held
as an array (the batched path crops them on the device; real ImageNet-100 / Places runs crop in the
workers), ImageNet-size augmentation with blur; the sampling round (4) is measured at CIFAR size only.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
import torchvision
from torch.utils.data import DataLoader

import train_simclr
from data.datasets import ArrayImageDataset
from data.device_loader import DeviceBatches, array_images
from data.gpu_aug import aug_config, two_views
from data.ood import IdOodDataset
from data.sampler import EpochSampler, SeededViews
from data.views import TwoViews, simclr_augmentation
from models import build_simclr
from data.randaug import RandAugConfig
from methods import Batch, SDCLR, SimCLR
from models.sdclr import build_sdclr
from sampling.colt import COLT, COLTConfig, select_by_clusters
from utils.embed import embed_dataset


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="CPU sizes (under 2 minutes): width 16, batch 64, 2 timed steps, pool 1,000 + 512 ID")
    p.add_argument("--kind", default="cifar", choices=["cifar", "imagenet"],
                   help="cifar: ResNet-18 (3x3 stem), 32 px; imagenet: ResNet-50, 224 px views of 256 px images, "
                        "batch 256 (stages 1-3 only)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="device to measure")
    p.add_argument("--batch_size", type=int, default=0,
                   help="global batch (default 512 cifar, 256 imagenet; 64 / 16 with --quick)")
    p.add_argument("--width", type=int, default=0, help="ResNet width (default 64, 16 with --quick)")
    p.add_argument("--steps", type=int, default=0,
                   help="timed steps per stage (default 20 cifar, 5 imagenet; 2 with --quick)")
    p.add_argument("--num_workers", type=int, default=2,
                   help="DataLoader workers of the per-image pipeline, and of the batched one on the CPU")
    p.add_argument("--threads", type=int, default=0, help="torch threads of the training process (0 = torch's)")
    p.add_argument("--pool", type=int, default=0, help="OOD pool size (default 300000, 1000 with --quick)")
    p.add_argument("--n_id", type=int, default=0,
                   help="ID images (default 12000, 512 with --quick; at least batch x (steps + 2))")
    p.add_argument("--budget", type=int, default=0, help="OOD images per round (default 10000, 250 quick)")
    p.add_argument("--stages", default="1,2,3,4,6",
                   help="comma list of the stages to run (1 model, 2 steps and augmentation, 3 COLT step, "
                        "4 COLT round, 6 SDCLR and BCL steps; 5 memory always); without 2, stage 4's epoch uses "
                        "the model-only step and stage 6 has no batched SimCLR step to compare BCL with")
    p.add_argument("--in_process", action="store_true",
                   help="also time the batched step with the augmentation in the training process (no workers)")
    p.add_argument("--compile", action="store_true", help="also time the model-only step under torch.compile")
    p.add_argument("--out", default="runs/bench/bench_train.json", help="JSON output")
    a = p.parse_args(argv)
    q, imagenet = a.quick, a.kind == "imagenet"
    a.batch_size = a.batch_size or ((16 if imagenet else 64) if q else (256 if imagenet else 512))
    a.width = a.width or (16 if q else 64)
    a.steps = a.steps or (2 if q else (5 if imagenet else 20))
    a.pool, a.n_id = a.pool or (1000 if q else 300000), a.n_id or (0 if imagenet else (512 if q else 12000))
    a.n_id = max(a.n_id, a.batch_size * (a.steps + 2))  # the loaders need warm-up + timed batches
    a.budget = a.budget or (250 if q else 10000)
    try:
        a.stages = {int(x) for x in a.stages.split(",")}
    except ValueError:
        p.error(f"--stages takes a comma list of 1-4 and 6, got {a.stages!r}")
    if imagenet:
        a.stages.discard(4)  # the round is measured at CIFAR size: a 300K pool of 256 px images is 59 GB
    return a


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def interleaved(steps: dict, rounds: int, device) -> dict:
    """Median seconds per call of each step, timed one call each in turn for ``rounds`` rounds after one
    warm-up call each."""
    import statistics
    for step in steps.values():
        step(0)
    sync(device)
    times = {name: [] for name in steps}
    for r in range(rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            step(r + 1)
            sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def timed_steps(step, n: int, device) -> float:
    """Seconds per call of ``step`` over n calls after one warm-up call."""
    step(0)
    sync(device)
    start = time.perf_counter()
    for i in range(n):
        step(i + 1)
    sync(device)
    return (time.perf_counter() - start) / n


def main(argv=None):
    a = parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device("cuda" if a.device == "auto" and torch.cuda.is_available() else
                          a.device if a.device != "auto" else "cpu")
    torch.manual_seed(0)
    targs = train_simclr.parse_args(["--temperature", "0.2", "--sup_weight", "0.2", "--k_largest_logits", "10",
                                     "--warmup", "0", "--sample_interval", "1"])
    imagenet = a.kind == "imagenet"
    size, source = (224, 256) if imagenet else (32, 32)  # view size, stored image size
    model = build_simclr("res50" if imagenet else "res18", width=a.width, cifar_stem=not imagenet,
                         output_ch=128).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    b = a.batch_size
    rng = np.random.default_rng(0)
    id_set = ArrayImageDataset(rng.integers(0, 256, (a.n_id, source, source, 3), dtype=np.uint8),
                               rng.integers(0, 10, a.n_id))
    rows, out = [], {"load_before": os.getloadavg()[0]}
    bench_start = time.perf_counter()

    simclr = SimCLR(model, targs.temperature, targs.precision)

    def train_step(views, colt=None, index=None, is_ood=None, method=simclr, runner=None, optimizer=opt):
        n = views.shape[0]
        batch = Batch(views, torch.arange(n) if index is None else index,
                      torch.zeros(n, dtype=torch.bool) if is_ood is None else is_ood)
        out = method.step(batch, runner)
        loss = out.loss if colt is None else out.loss + colt.extra_loss(out)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if colt is not None:
            colt.step_end(out, 1)

    # (1) model only
    random_views = torch.randint(0, 256, (b, 2, 3, size, size), dtype=torch.uint8, device=device)
    t_model = timed_steps(lambda i: train_step(random_views), a.steps, device)
    out["model_only_img_s"] = b / t_model
    rows.append(("(1) model only (fwd+bwd+SGD)", b / t_model, 1.0))
    if a.compile:
        compiled = torch.compile(simclr)
        def step_c(i):
            train_step(random_views, runner=compiled)
        start = time.perf_counter()
        step_c(0)
        out["compile_first_step_s"] = time.perf_counter() - start
        t_c = timed_steps(step_c, a.steps, device)
        out["compiled_img_s"] = b / t_c
        rows.append((f"(1c) model only, torch.compile (first step {out['compile_first_step_s']:.0f} s)",
                     b / t_c, t_model / t_c))

    t_gpu = t_model
    if 2 in a.stages:
        # (2a) per-image pipeline: DataLoader workers, as train_simclr --aug_device cpu
        data = IdOodDataset(id_set)
        sampler = EpochSampler(len(data), b, seed=1)
        sampler.set_epoch(1)
        loader = DataLoader(SeededViews(data, TwoViews(simclr_augmentation(a.kind))), batch_size=b,
                            sampler=sampler, num_workers=a.num_workers, drop_last=True,
                            persistent_workers=a.num_workers > 0, pin_memory=device.type == "cuda")
        it = iter(loader)
        t_cpu = timed_steps(lambda i: train_step(next(it)[0]), min(a.steps, len(loader) - 1), device)
        del it, loader
        rows.append((f"(2a) SimCLR step, per-image aug ({a.num_workers} workers)", b / t_cpu, t_model / t_cpu))
        out["per_image_step_img_s"] = b / t_cpu
        # (2b) batched pipeline: uint8 data on the device, index gather, batched augmentation (on the CPU
        # in worker processes, as train_simclr --aug_device gpu with --num_workers)
        id_images = array_images(id_set).to(device)
        workers = a.num_workers if device.type == "cpu" else 0
        batches = DeviceBatches(data, id_images, sampler, aug_config(a.kind), 1, device, workers)
        it, timed = iter(batches), min(a.steps, len(batches) - 1)
        t_gpu = timed_steps(lambda i: train_step(next(it)[0]), timed, device)
        del it, batches
        where = f"{workers} workers" if workers else "on device"
        rows.append((f"(2b) SimCLR step, batched aug ({where})", b / t_gpu, t_model / t_gpu))
        out["batched_step_img_s"] = b / t_gpu
        out["batched_over_per_image"] = t_cpu / t_gpu
        if a.in_process and workers:
            it = iter(DeviceBatches(data, id_images, sampler, aug_config(a.kind), 1, device))
            t_in = timed_steps(lambda i: train_step(next(it)[0]), timed, device)
            rows.append(("(2c) SimCLR step, batched aug in the training process", b / t_in, t_model / t_in))
            out["batched_in_process_step_img_s"] = b / t_in

        # augmentation alone (one process, no model), in a worker's single thread on the CPU
        views = TwoViews(simclr_augmentation(a.kind))
        imgs = array_images(id_set, np.arange(b))
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        start = time.perf_counter()
        for k in range(b):
            views(imgs[k])
        t_aug_cpu = time.perf_counter() - start
        if device.type == "cuda":
            torch.set_num_threads(threads)
        dev_imgs = imgs.to(device)
        t_aug_b = timed_steps(lambda i: two_views(dev_imgs, aug_config(a.kind), 1, 1, i), a.steps, device)
        torch.set_num_threads(threads)
        rows.append(("aug only, per image (1 thread, 2 views)", b / t_aug_cpu, float("nan")))
        rows.append((f"aug only, batched (2 views{', 1 thread' if device.type == 'cpu' else ''})", b / t_aug_b,
                     float("nan")))
        out["aug_per_image_img_s"], out["aug_batched_img_s"] = b / t_aug_cpu, b / t_aug_b

    if 3 in a.stages:
        # (3) SimCLR+COLT step vs plain, on the same random views (a quarter of the batch OOD)
        colt = COLT(a.n_id, COLTConfig.from_args(targs, a.pool), device)
        index = torch.arange(b) % a.n_id
        is_ood = torch.arange(b) >= 3 * b // 4
        t_colt = timed_steps(lambda i: train_step(random_views, colt, index, is_ood), a.steps, device)
        rows.append(("(3) SimCLR+COLT step (ratio = time / plain)", b / t_colt, t_colt / t_model))
        out["colt_over_plain"] = t_colt / t_model

    if 4 in a.stages:
        # (4) one COLT round: embed ID and pool, k-means, budgets, selection
        pool = ArrayImageDataset(rng.integers(0, 256, (a.pool, 32, 32, 3), dtype=np.uint8))
        scores = rng.random(a.n_id)
        sync(device)
        start = time.perf_counter()
        id_emb = embed_dataset(model, id_set, device, batch_size=2048)
        pool_emb = embed_dataset(model, pool, device, batch_size=2048)
        sync(device)
        t_embed = time.perf_counter() - start
        select_by_clusters(id_emb, pool_emb, scores, a.budget, 10, 1.0, seed=0)
        t_round = time.perf_counter() - start
        epoch_s = (a.n_id + a.budget) * t_gpu / b
        rows.append((f"(4) COLT round, {a.pool} pool + {a.n_id} ID: {t_round:.1f}s (embed {t_embed:.1f}s); "
                     f"fraction of an epoch", (a.pool + a.n_id) / t_embed, t_round / epoch_s))
        out.update(round_s=t_round, embed_s=t_embed, round_over_epoch=t_round / epoch_s)

    if 6 in a.stages:
        # (6) SDCLR: B dense + B pruned image forwards, as SimCLR's 2B; the release's two passes add one.
        # The steps are timed in interleaved rounds (the median round of each), so that load changes on a
        # shared machine hit every method alike.
        from bench.bench_sdclr import two_pass_step
        from utils.device import to_device
        net = build_sdclr("res50" if imagenet else "res18", width=a.width, cifar_stem=not imagenet, output_ch=128,
                          dual_bn=True).to(device)
        if device.type == "cuda":
            net = net.to(memory_format=torch.channels_last)
        net.update_masks(0.9)
        sdclr = SDCLR(net, targs.temperature, targs.precision, 0.9)
        sdclr_opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
        x1, x2 = to_device(random_views[:, 0], device), to_device(random_views[:, 1], device)
        steps = {"simclr": lambda i: train_step(random_views),
                 "sdclr": lambda i: train_step(random_views, method=sdclr, optimizer=sdclr_opt),
                 "two_pass": lambda i: two_pass_step(net, sdclr_opt, x1, x2, device, targs.precision)}
        t = interleaved(steps, max(a.steps, 3), device)
        rows.append(("(6a) SDCLR step, one forward of both branches (ratio = time / SimCLR's)", b / t["sdclr"],
                     t["sdclr"] / t["simclr"]))
        rows.append(("(6b) SDCLR step, the release's two passes (ratio = time / SimCLR's)", b / t["two_pass"],
                     t["two_pass"] / t["simclr"]))
        out.update(sdclr_over_simclr=t["sdclr"] / t["simclr"], sdclr_two_pass_over_simclr=t["two_pass"] / t["simclr"])
        if 2 in a.stages:  # BCL on the batched path against the batched SimCLR step, same sampler and data
            loaders = {}
            for k, label in ((0, "SimCLR"), (1, "BCL-I"), (2, "BCL-D")):
                sampler.set_strengths(torch.rand(len(data), generator=torch.Generator().manual_seed(k)) if k else None)
                loaders[label] = iter(DeviceBatches(data, id_images, sampler, aug_config(a.kind), 1, device, workers,
                                                    randaug=RandAugConfig(k=k) if k else None))
            sampler.set_strengths(None)
            t = interleaved({label: (lambda i, it=it: train_step(next(it)[0])) for label, it in loaders.items()},
                            min(max(a.steps, 3), len(sampler) // b - 2), device)
            for label in ("BCL-I", "BCL-D"):
                rows.append((f"(6c) {label} augmentation + SimCLR step, batched (ratio = time / batched SimCLR's)",
                             b / t[label], t[label] / t["SimCLR"]))
                out[f"{label.lower().replace('-', '_')}_over_batched_simclr"] = t[label] / t["SimCLR"]
            del loaders

    # (5) memory
    out["peak_host_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["peak_device_mib"] = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
    dev_mib = "n/a" if out["peak_device_mib"] is None else f"{out['peak_device_mib']:.0f} MiB"
    rows.append((f"(5) peak host {out['peak_host_mib']:.0f} MiB, device {dev_mib}", float("nan"), float("nan")))

    out.update(device=torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "cpu",
               torch=torch.__version__, torchvision=torchvision.__version__, threads=torch.get_num_threads(),
               kind=a.kind, model="res50" if imagenet else "res18", view_size=size, n_id=a.n_id,
               pool=a.pool if 4 in a.stages else None, budget=a.budget if 4 in a.stages else None,
               batch_size=b, width=a.width, steps=a.steps, date=time.strftime("%Y-%m-%d %H:%M"),
               load_after=os.getloadavg()[0], seconds=time.perf_counter() - bench_start)
    print(f"{out['date']} device {out['device']} ({device.type}, {out['threads']} threads), torch {out['torch']}, "
          f"torchvision {out['torchvision']}, batch {b}, {'ResNet-50' if imagenet else 'ResNet-18'} width {a.width}, "
          f"{size} px, {a.steps} timed steps; "
          f"load average {out['load_before']:.1f} before, {out['load_after']:.1f} after; {out['seconds']:.0f} s")
    print("| stage | images/s | ratio |\n|---|---|---|")
    for name, ips, ratio in rows:
        print(f"| {name} | {'' if ips != ips else f'{ips:.0f}'} | {'' if ratio != ratio else f'{ratio:.2f}'} |")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
