"""One real local Ray cluster for the whole test run, started only when a test asks for it.

``ray_cluster`` starts ``ray start --head`` (CPU, 4 logical CPUs, 80 MB object store, token
auth, all files under a fresh temp folder) and makes the tiny model once; the Serve app with two
tiny replicas is deployed by the first daemon that connects and reused by the next ones (same
fingerprint). At the end of the session every Ray process is killed by pid and the folder goes.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from daemon.engine.tiny import ensure_tiny
from tests.support.exit_guard import end_with_status_at_exit
from tests.support.ray_cluster import LocalRayCluster


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Ray's driver threads have crashed the interpreter at exit (once in about ten runs) after
    every test passed and was reported: keep pytest's status (see tests.support.exit_guard)."""
    if "ray" in sys.modules:
        end_with_status_at_exit(exitstatus)


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[LocalRayCluster]:
    # Short and private: Ray's socket paths under it must stay below the 107-byte limit.
    root = Path(tempfile.mkdtemp(prefix="hm-ray-"))
    ensure_tiny(root / "tiny")
    # 4 logical CPUs: the session's four apps reserve 1 each (their processes share 2 cores)
    cluster = LocalRayCluster(root, num_cpus=4).start()
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_dir(ray_cluster: LocalRayCluster) -> Path:
    return ray_cluster.root / "tiny"


@pytest.fixture
def context() -> Iterator[zmq.Context]:
    ctx = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)
