"""A real single-node Ray cluster for tests: ``ray start --head --block`` in its own session.

No GPU unless asked, a small object store, no dashboard, token authentication on (the token
in a file of its own, so nothing is written to ~/.ray), every Ray file under ``root``. Replicas
import the repository (``PYTHONPATH``), so test engine factories work on them. ``stop()``
kills every process of the cluster's session by pid: nothing outlives the test run.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .runner import REPO_ROOT

_START_TIMEOUT_S = 60.0
_DEPLOY_TIMEOUT_S = 300.0
#: An operator's deployment: the KubeRay builder's app, run from a driver that then leaves
#: (the app stays). Ray's driver teardown can crash at exit: the script ends with os._exit.
_DEPLOY = """
import json, os, sys
import ray
from ray import serve
from daemon.cluster.app import build
address, app, args = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
ray.init(address=address, log_to_driver=False)
serve.run(build(args), name=app, route_prefix=None)
print("deployed", flush=True)
os._exit(0)
"""
_OBJECT_STORE_BYTES = 80 * 1024 * 1024


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LocalRayCluster:
    def __init__(self, root: Path, num_cpus: int = 2, num_gpus: int = 0) -> None:
        self.root = Path(root)
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.token_file = self.root / "auth_token"
        self.proc: subprocess.Popen[bytes] | None = None

    def environment(self) -> dict[str, str]:
        """What a driver (or the head) needs: the token, and the repository on the path."""
        return dict(
            os.environ,
            PYTHONPATH=str(REPO_ROOT),
            RAY_AUTH_MODE="token",
            RAY_AUTH_TOKEN_PATH=str(self.token_file),
        )

    def start(self) -> LocalRayCluster:
        self.root.mkdir(parents=True, exist_ok=True)
        if not self.token_file.exists():  # a restart keeps its token (and its port)
            self.token_file.write_text(secrets.token_hex(32) + "\n")
            self.token_file.chmod(0o600)
        ray = Path(sys.executable).with_name("ray")
        cmd = [str(ray), "start", "--head", "--block", "--port", str(self.port),
               "--node-ip-address", "127.0.0.1", "--num-cpus", str(self.num_cpus),
               "--num-gpus", str(self.num_gpus), "--object-store-memory", str(_OBJECT_STORE_BYTES),
               "--include-dashboard", "false", "--disable-usage-stats",
               "--ray-client-server-port", str(free_port()),
               "--temp-dir", str(self.root / "ray")]  # fmt: skip
        log = (self.root / "head.log").open("wb")
        self.proc = subprocess.Popen(
            cmd,
            cwd=REPO_ROOT,
            env=self.environment(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # every Ray process shares this session: stop() finds them
        )
        log.close()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ray start exited: {(self.root / 'head.log').read_text()}")
            if "block forever" in (self.root / "head.log").read_text(errors="replace"):
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("the Ray head did not start in time")

    def deploy(self, app: str, args: Mapping[str, Any]) -> None:
        """Deploy ``daemon.cluster.app:build`` with ``args`` as the Serve app ``app``, as an
        operator does for a daemon with ``deploy = false``; returns once its replicas run."""
        done = subprocess.run(
            [sys.executable, "-c", _DEPLOY, self.address, app, json.dumps(dict(args))],
            cwd=REPO_ROOT,
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=_DEPLOY_TIMEOUT_S,
        )
        if "deployed" not in done.stdout:
            raise RuntimeError(f"deploying {app!r} failed: {done.stderr[-4000:]}")

    def pids(self) -> list[int]:
        """Every live process of the cluster (same session as ``ray start``)."""
        if self.proc is None:
            return []
        sid = self.proc.pid
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if os.getsid(int(entry.name)) == sid:
                        found.append(int(entry.name))
                except (ProcessLookupError, PermissionError):
                    continue
        return found

    def stop(self) -> None:
        """Kill the cluster's processes, by pid, until none is left (a few seconds at most)."""
        deadline = time.monotonic() + 10.0
        while (pids := self.pids()) and time.monotonic() < deadline:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
            if self.proc is not None:
                self.proc.poll()  # reap our own child, or it lingers as a zombie of the session
        if self.proc is not None:
            self.proc.wait(10)
        left = self.pids()
        if left:
            raise RuntimeError(f"Ray processes survived stop(): {left}")
