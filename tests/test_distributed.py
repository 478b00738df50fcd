"""The process-group backend and the GPU of each local rank, with their environment overrides."""
import pytest
import torch

from utils import distributed
from utils.distributed import BACKEND_ENV, SHARE_GPU_ENV, choose_backend, gpu_index


def test_backend_defaults_and_override(monkeypatch):
    monkeypatch.delenv(BACKEND_ENV, raising=False)
    assert choose_backend("cuda") == "nccl" and choose_backend("cpu") == "gloo"
    monkeypatch.setenv(BACKEND_ENV, "gloo")
    assert choose_backend("cuda") == "gloo"
    monkeypatch.setenv(BACKEND_ENV, " NCCL ")
    assert choose_backend("cuda") == "nccl"
    with pytest.raises(ValueError, match="nccl needs CUDA"):
        choose_backend("cpu")
    monkeypatch.setenv(BACKEND_ENV, "mpi")
    with pytest.raises(ValueError, match="expected one of nccl, gloo"):
        choose_backend("cuda")


def test_each_local_rank_has_its_gpu_unless_they_share(monkeypatch):
    monkeypatch.delenv(SHARE_GPU_ENV, raising=False)
    assert [gpu_index(r, 4) for r in range(4)] == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="local rank 1 has no GPU of its own.*LTSSL_SHARE_GPU=1"):
        gpu_index(1, 1)
    monkeypatch.setenv(SHARE_GPU_ENV, "1")
    assert [gpu_index(r, 2) for r in range(4)] == [0, 1, 0, 1]


def test_a_single_process_needs_no_group(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    info = distributed.init_distributed("cpu")
    assert (info.rank, info.world_size, info.device, info.is_main) == (0, 1, torch.device("cpu"), True)
    assert distributed.backend_name() is None
