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
