"""Everything about devices, process groups and ranks lives here.

Launch with ``torchrun`` (it sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) or run plainly
for a single process. No other module calls ``torch.distributed`` directly.

Two environment variables override the defaults, for checks on a machine with fewer GPUs than processes
(NCCL refuses two ranks on one GPU; gloo accepts CUDA tensors, SyncBatchNorm included):

* ``LTSSL_DIST_BACKEND`` = ``nccl`` or ``gloo``: the process-group backend (default: NCCL on CUDA, gloo
  on the CPU; NCCL needs CUDA).
* ``LTSSL_SHARE_GPU`` = ``1``: processes share the visible GPUs, local rank r on ``cuda:(r mod count)``.
  Without it a local rank with no GPU of its own is an error.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return default if value in (None, "") else int(value)


BACKEND_ENV = "LTSSL_DIST_BACKEND"
SHARE_GPU_ENV = "LTSSL_SHARE_GPU"
BACKENDS = ("nccl", "gloo")


def choose_backend(device: str) -> str:
    """The process-group backend for ``device`` ("cuda" or "cpu"): ``LTSSL_DIST_BACKEND`` if set, else NCCL
    on CUDA and gloo on the CPU. Raises ValueError for an unknown name or NCCL without CUDA."""
    backend = os.environ.get(BACKEND_ENV, "").strip().lower()
    if not backend:
        return "nccl" if device == "cuda" else "gloo"
    if backend not in BACKENDS:
        raise ValueError(f"{BACKEND_ENV}={backend!r}: expected one of {', '.join(BACKENDS)}")
    if backend == "nccl" and device != "cuda":
        raise ValueError(f"{BACKEND_ENV}=nccl needs CUDA, but this process runs on the {device}")
    return backend


def gpu_index(local_rank: int, count: int) -> int:
    """The GPU of local rank ``local_rank`` among ``count`` visible ones: its own, or with
    ``LTSSL_SHARE_GPU=1`` ``local_rank mod count``. Raises ValueError when it has none."""
    if os.environ.get(SHARE_GPU_ENV, "") == "1":
        return local_rank % count
    if local_rank >= count:
        raise ValueError(f"local rank {local_rank} has no GPU of its own ({count} visible): start at most "
                         f"{count} processes per node, or set {SHARE_GPU_ENV}=1 to share them (with "
                         f"{BACKEND_ENV}=gloo: NCCL refuses two ranks on one GPU)")
    return local_rank


def init_distributed(device: str = "auto") -> DistInfo:
    """Start the process group if torchrun launched several processes, and pick this process's device.

    ``device`` is "auto" (CUDA when available), "cuda" or "cpu". Backend: NCCL on CUDA, gloo on CPU, unless
    ``LTSSL_DIST_BACKEND`` says otherwise; ``LTSSL_SHARE_GPU=1`` lets processes share GPUs (module docstring).
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available here (torch.cuda.is_available() is False); "
                         "use --device cpu or auto")
    rank, world_size = _env_int("RANK", 0), _env_int("WORLD_SIZE", 1)
    local_rank = _env_int("LOCAL_RANK", 0)
    if device == "cuda":
        torch_device = torch.device("cuda", gpu_index(local_rank, torch.cuda.device_count()))
        torch.cuda.set_device(torch_device)
    else:
        torch_device = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        backend = choose_backend(device)
        # device_id binds NCCL's communicator to this GPU at once; gloo takes no device
        dist.init_process_group(backend=backend, device_id=torch_device if backend == "nccl" else None)
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=torch_device)


def backend_name() -> str | None:
    """The backend of the running process group ("nccl", "gloo"), None without one."""
    return dist.get_backend() if dist.is_available() and dist.is_initialized() else None


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


class _AllGatherWithGrad(torch.autograd.Function):
    """all_gather whose backward sends each rank the gradient of its own slice, summed over ranks.

    Every rank computes the same global loss, so the summed gradient is world_size times the true one;
    DDP's gradient averaging divides it back.
    """

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        ctx.batch = tensor.shape[0]
        gathered = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(gathered, tensor.contiguous())
        return torch.cat(gathered, dim=0)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> torch.Tensor:
        grad = grad_output.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = dist.get_rank() * ctx.batch
        return grad[start:start + ctx.batch]


def all_gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate equal-sized tensors from all ranks along dim 0 (rank order), keeping gradients."""
    if world_size() == 1:
        return tensor
    return _AllGatherWithGrad.apply(tensor)


@torch.no_grad()
def all_gather_variable(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate tensors whose first dimension may differ across ranks (rank order), no gradients."""
    if world_size() == 1:
        return tensor
    size = torch.tensor([tensor.shape[0]], device=tensor.device)
    sizes = [torch.zeros_like(size) for _ in range(world_size())]
    dist.all_gather(sizes, size)
    sizes = [int(s.item()) for s in sizes]
    padded = torch.zeros((max(sizes),) + tensor.shape[1:], dtype=tensor.dtype, device=tensor.device)
    padded[:tensor.shape[0]] = tensor
    gathered = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(gathered, padded)
    return torch.cat([g[:n] for g, n in zip(gathered, sizes)], dim=0)


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """Mean over ranks (returns a new tensor; the input is untouched)."""
    if world_size() == 1:
        return tensor.clone()
    out = tensor.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / world_size()


def broadcast_object(obj, src: int = 0):
    """Send a picklable object from ``src`` to every rank (e.g. a run directory decided on rank 0)."""
    if world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]
