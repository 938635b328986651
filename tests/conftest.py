"""Shared fixtures. Tests that need the real data in ``../shared`` skip cleanly without it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]

# The suite starts command-line subprocesses from a process that has run OpenVINO (whose TBB worker threads
# live on): with CPython's vfork fast path, the parent crashed (SIGSEGV in the main thread right after the
# vfork, twice at the same test of a full run). Plain fork + exec costs a few milliseconds and does not.
subprocess._USE_VFORK = False

# The suite's checkpoints are random networks made in the tests: let them through the refusal of untrained
# weights (resnet.inference.load.refuse_untrained), here and in the commands the tests start. The tests of
# that refusal remove the variable.
os.environ.setdefault("RESNET_ALLOW_UNTRAINED", "1")


def find_shared() -> Path | None:
    candidates = [os.environ.get("RESNET_SHARED_DIR"), REPO.parent / "shared", Path("/work/shared")]
    for c in candidates:
        if c and (Path(c) / "data").is_dir():
            return Path(c)
    return None


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    path = find_shared()
    if path is None:
        pytest.skip("../shared (real CIFAR-10 and reference weights) is not present on this machine")
    return path


@pytest.fixture(scope="session")
def cifar10_dir(shared_dir: Path) -> Path:
    path = shared_dir / "data" / "cifar10"
    if not (path / "test").is_dir():
        pytest.skip("../shared/data/cifar10 is not present")
    return path


@pytest.fixture(scope="session")
def akamaster_dir(shared_dir: Path) -> Path:
    path = shared_dir / "data" / "reference-weights" / "akamaster-cifar10"
    if not path.is_dir():
        pytest.skip("../shared/data/reference-weights/akamaster-cifar10 is not present")
    return path


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture()
def single_thread():
    """One intra-op thread for the test (opt in with ``pytestmark = pytest.mark.usefixtures("single_thread")``).

    Tests made of batch-of-one passes over big networks gain nothing from a second thread, and on a
    2-core machine shared with other jobs the idle-waiting of OpenMP workers costs several times the
    CPU time of the work itself (tests/test_models.py: 156 s of CPU with 2 threads, 42 s with 1).
    """
    from resnet.utils.threads import single_threaded

    with single_threaded():
        yield


@pytest.fixture(scope="session", autouse=True)
def _engine_choices_in_a_session_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """``engine="auto"`` (the default) caches what it measured; the suite keeps its choices out of the user's cache.

    Only the engine-choice file moves (:data:`resnet.inference.choice.CACHE_ENV`); the data caches stay where they are.
    """
    os.environ.setdefault("RESNET_ENGINE_CACHE", str(tmp_path_factory.mktemp("engine-cache") / "engines.json"))
