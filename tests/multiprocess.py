"""Run a function in several gloo processes on this CPU and collect what each returns."""
from __future__ import annotations

import os
import pickle
import socket

import torch.distributed as dist
import torch.multiprocessing as mp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world_size: int, port: int, fn, args, queue) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        # plain pickle bytes: torch would share tensors by file handle, which dies with this process
        queue.put((rank, pickle.dumps(fn(rank, world_size, *args))))
    finally:
        if dist.is_initialized():  # the function may have closed the group itself
            dist.destroy_process_group()


def run_processes(fn, world_size: int = 2, *args) -> list:
    """``fn(rank, world_size, *args)`` in ``world_size`` processes; returns their results in rank order.
    ``fn`` must be importable (a module-level function) and return picklable values."""
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    context = mp.start_processes(_worker, args=(world_size, _free_port(), fn, args, queue), nprocs=world_size,
                                 join=False, start_method="spawn")
    results = {rank: pickle.loads(data) for rank, data in (queue.get() for _ in range(world_size))}
    context.join()
    return [results[r] for r in range(world_size)]
