import os
import sys
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # the tests run from a checkout whether or not it is installed

SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

# CUDA tests compare a result on the accelerator with the CPU's on the same input. Without CUDA they skip,
# unless LTSSL_TEST_DEVICE=cpu lets the CPU stand in for the accelerator (CI: their code runs, and the
# comparisons hold trivially or to float noise; only a real GPU makes them meaningful).
TEST_DEVICE_ENV = "LTSSL_TEST_DEVICE"
CUDA_SKIP_REASON = f"needs a CUDA device ({TEST_DEVICE_ENV}=cpu runs it with the CPU standing in)"


def cpu_stands_in() -> bool:
    return not torch.cuda.is_available() and os.environ.get(TEST_DEVICE_ENV) == "cpu"


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: compares a CUDA result with the CPU's; skips without CUDA unless "
                                       f"{TEST_DEVICE_ENV}=cpu (the CPU stands in); select with -m cuda")


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available() or cpu_stands_in():
        return
    skip = pytest.mark.skip(reason=CUDA_SKIP_REASON)
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)


@pytest.fixture
def accelerator() -> torch.device:
    """The device a CUDA test runs on: the current CUDA device, or the CPU where it stands in."""
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    if cpu_stands_in():
        return torch.device("cpu")
    pytest.skip(CUDA_SKIP_REASON)


@pytest.fixture
def shared_data() -> Path:
    """The developers' real CIFAR material beside the checkout; users do not have it."""
    if not (SHARED_DATA / "cifar10-salvage.npz").is_file():
        pytest.skip(f"no real CIFAR data at {SHARED_DATA}")
    return SHARED_DATA


# ---- the hostile-input suites (tests/test_hostile_*.py) ----------------------------------------------------

@pytest.fixture(scope="session")
def case_server():
    """Entry points run as separate processes forked from one warm interpreter (tests/case_runner.py)."""
    from tests.case_runner import CaseServer
    with CaseServer() as server:
        yield server


@pytest.fixture(scope="session")
def hostile_world(case_server, tmp_path_factory):
    """Tiny shared inputs for the hostile suites (tests/hostile.py); world-readable, so that cases may run
    as an unprivileged user."""
    from tests.hostile import build_world
    world = build_world(case_server)
    yield world
    world.cleanup()
