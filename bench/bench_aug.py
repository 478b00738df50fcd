"""Batched two-view SimCLR augmentation, candidates side by side in one run: images/s (two views each).

    python bench/bench_aug.py                 # CPU, 1 thread (a DataLoader worker's), batch 256, 32x32
    python bench/bench_aug.py --threads 2 --device cuda

Candidates: ours (data/gpu_aug.two_views: per-image crop boxes as bicubic resampling matrices, jitter in a
per-image order), kornia.augmentation (RandomResizedCrop bicubic + flip + ColorJitter p 0.8 + RandomGrayscale
p 0.2, per-image parameters, one jitter order per call), torchaug (per-image crop needs one chunk per image;
jitter factors per image, one order per chunk) and torchvision v2 per image (the per-image path's own op).
kornia and torchaug are optional: only for this benchmark, not requirements; a missing one is skipped.
BCL rows: ours followed by RandAugment (data/randaug.randaugment, k = 1 BCL-I and k = 2 BCL-D) at strengths
w ~ U(0, 1) and at w = 1 (every slot applied), and the per-image path with the PIL RandAugment; the ratio
column is images/s relative to ours without RandAugment.
Prints a table and writes JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
import torchvision

from data.gpu_aug import aug_config, two_views
from data.randaug import RandAugConfig
from data.views import TwoViews, simclr_augmentation


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch_size", type=int, default=256, help="images per batch (two views each)")
    p.add_argument("--repeats", type=int, default=5, help="timed batches per candidate (median reported)")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1 = a DataLoader worker)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="device of the batched candidates")
    p.add_argument("--out", default="bench/bench_aug.json", help="JSON output")
    return p.parse_args(argv)


def median_seconds(fn, repeats: int, device: torch.device) -> float:
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def kornia_pipeline():
    import kornia.augmentation as K
    return K.AugmentationSequential(
        K.RandomResizedCrop((32, 32), scale=(0.1, 1.0), resample="BICUBIC"), K.RandomHorizontalFlip(),
        K.ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.8), K.RandomGrayscale(p=0.2))


def torchaug_pipeline(n: int):
    import torchaug.transforms as T
    from torchvision.transforms import InterpolationMode
    ops = [T.RandomResizedCrop(32, scale=(0.1, 1.0), interpolation=InterpolationMode.BICUBIC, num_chunks=n,
                               batch_transform=True),
           T.RandomHorizontalFlip(batch_transform=True),
           T.RandomColorJitter(0.4, 0.4, 0.4, 0.1, p=0.8, batch_transform=True, num_chunks=24),
           T.RandomGrayscale(p=0.2, batch_transform=True)]

    def run(x):
        for op in ops:
            x = op(x)
        return x
    return run


def main(argv=None):
    a = parse_args(argv)
    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    torch.manual_seed(0)
    b = a.batch_size
    images = torch.randint(0, 256, (b, 3, 32, 32), dtype=torch.uint8)
    on_device = images.to(device)
    pair = torch.cat([on_device, on_device])  # the libraries take both views' inputs as one batch
    candidates = {"ours (data/gpu_aug)": lambda: two_views(on_device, aug_config("cifar"), 1, 1, 0)}
    notes = {"ours (data/gpu_aug)": "per-image order, antialiased bicubic as torchvision uint8 (tests)"}
    try:
        pipe = kornia_pipeline().to(device)
        unit = pair.float().div(255)
        candidates["kornia.augmentation"] = lambda: pipe(unit)
        import kornia
        notes["kornia.augmentation"] = (f"kornia {kornia.__version__}: one jitter order per call, bicubic "
                                        f"without antialias, float [0, 1] in and out")
    except Exception as e:
        notes["kornia.augmentation"] = f"not measured: {type(e).__name__}: {e}"
    try:
        run = torchaug_pipeline(2 * b)
        candidates["torchaug"] = lambda: run(pair)
        import torchaug
        notes["torchaug"] = (f"torchaug {torchaug.__version__}: per-image crop = {2 * b} chunks (a loop), "
                             f"jitter order per chunk (24), uint8")
    except Exception as e:  # not installed, or rejects these settings
        notes["torchaug"] = f"not measured: {type(e).__name__}: {e}"
    views = TwoViews(simclr_augmentation("cifar"))
    candidates["torchvision v2 per image"] = lambda: [views(images[k]) for k in range(b)]
    notes["torchvision v2 per image"] = "the per-image path (CPU, one image at a time)"
    def with_randaug(k: int, strengths: torch.Tensor):
        config = RandAugConfig(k=k)
        return lambda: two_views(on_device, aug_config("cifar"), 1, 1, 0, strengths=strengths, randaug=config)

    uniform = torch.rand(b, generator=torch.Generator().manual_seed(0))
    for k in (1, 2):
        for label, strengths in (("w ~ U(0, 1)", uniform), ("w = 1", torch.ones(b))):
            name = f"ours + RandAugment k={k}, {label}"
            candidates[name] = with_randaug(k, strengths)
            notes[name] = "data/randaug.randaugment after the SimCLR view, exact as the PIL ops (tests)"
    bcl_views = TwoViews(simclr_augmentation("cifar"), RandAugConfig(k=2))
    per_image_bcl = "torchvision v2 + PIL RandAugment k=2 per image, w ~ U(0, 1)"
    candidates[per_image_bcl] = lambda: [bcl_views(images[k], float(uniform[k])) for k in range(b)]
    notes[per_image_bcl] = "the per-image path with BCL's RandAugment (the release's PIL calls)"

    rows = {}
    for name, fn in candidates.items():
        try:
            seconds = median_seconds(fn, a.repeats, torch.device("cpu") if "per image" in name else device)
            rows[name] = b / seconds
        except Exception as e:  # a library that rejects these settings is reported, not fatal
            rows[name] = None
            notes[name] += f"; failed: {type(e).__name__}: {e}"
    out = dict(date=time.strftime("%Y-%m-%d"), device=a.device, threads=a.threads, batch_size=b,
               torch=torch.__version__, torchvision=torchvision.__version__, images_per_s=rows, notes=notes)
    print(f"{out['date']} {a.device}, {a.threads} thread(s), batch {b} x 2 views, 32x32, torch {torch.__version__}")
    print("| candidate | images/s (2 views) | vs ours | notes |\n|---|---|---|---|")
    base = rows["ours (data/gpu_aug)"]
    for name in candidates:
        ips = rows[name]
        ratio = "" if ips is None or base is None else f"{ips / base:.2f}"
        print(f"| {name} | {'failed' if ips is None else f'{ips:.0f}'} | {ratio} | {notes[name]} |")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
