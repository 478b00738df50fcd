import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # the tests run from a checkout whether or not it is installed

SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """The developers' real CIFAR material beside the checkout; users do not have it."""
    if not (SHARED_DATA / "cifar10-salvage.npz").is_file():
        pytest.skip(f"no real CIFAR data at {SHARED_DATA}")
    return SHARED_DATA


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: needs a CUDA device; skipped with a reason without one")


def pytest_collection_modifyitems(config, items):
    import torch
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (torch.cuda.is_available() is False)")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)
