"""Ray backend figures against the local backend, in one run (prints, asserts nothing).

    .venv/bin/python tests/cluster/bench_ray.py [--jobs 200] [--rounds 10] [--replicas-max 2]
        [--gpus 0] [--only overhead|memory|throughput]

Starts a local Ray cluster (tests/support/ray_cluster.py), then measures with the test engine
(``stepping_engine``: sleeps per sampler step, so the figures are the path, not the model):

- overhead per job: end-to-end latency of sequential 1-candidate, 4-step jobs from one client
  over loopback, zero-cost engine, Ray backend (1 replica) minus local backend. Both daemons run
  at once and are measured in alternating rounds (local, Ray, a bare Serve call, the Serve call
  of a 1-job batch from this driver without a daemon; the next round in reverse order), so all
  see the same machine; the figure is the median of the rounds' differences (before session 5:
  one block of local jobs, then one block of Ray jobs). The load average at start and end, and
  the CPU time per job of this process, the replica and Ray's other processes (less moved by
  the machine's load than latency) come with it;
- where a job's time goes (phases from the daemon's own log events);
- host memory of each replica process per ``text_encoders`` layout (tiny model, real engine);
- throughput: 20 clients x (jobs / 20) jobs with 20 ms per step x 10 steps, local backend
  (1 device) and Ray with 1 .. ``--replicas-max`` replicas.

On a GPU box, ``--gpus 1`` gives each replica a whole GPU (one replica per GPU) instead of
half a CPU; the cluster then starts with ``--num-gpus`` = ``--replicas-max``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray
import zmq
from ray import serve

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from daemon.cluster.backend import RayBackend
from daemon.cluster.cancel_board import start_board
from daemon.cluster.config import ClusterConfig
from daemon.cluster.messages import BatchRequest
from daemon.cluster.session import leave
from daemon.config import DaemonConfig, with_overrides
from daemon.engine.tiny import ensure_tiny
from daemon.engine_api import JobSpec
from shared_protocol import Generate, Result
from tests.support import DaemonHandle, TestEngine, make_config, run_daemon
from tests.support.engine import stepping_engine
from tests.support.markers import MODEL
from tests.support.ray_cluster import LocalRayCluster
from tests.support.wire import Peer

SMALL = Generate(prompt="a person walks", duration_s=0.67, candidates=1, seed=1, steps=4)
BUSY = Generate(prompt="a person walks", duration_s=0.67, candidates=1, seed=1, steps=10)
STEP_S = 0.02


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=200, help="jobs per measurement")
    parser.add_argument("--replicas-max", type=int, default=2)
    parser.add_argument("--gpus", type=float, default=0.0, help="GPUs per replica")
    parser.add_argument("--rounds", type=int, default=10, help="alternating overhead rounds")
    parser.add_argument(
        "--only", choices=("overhead", "memory", "throughput"), help="one measurement alone"
    )
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="hm-bench-ray-"))
    gpus = int(args.gpus * args.replicas_max) if args.gpus else 0
    # 4 logical CPUs: the apps measured one after another reserve up to 3 (they stay deployed)
    cluster = LocalRayCluster(root, num_cpus=4, num_gpus=gpus)
    context = zmq.Context()
    print(f"machine: {platform.processor() or platform.machine()}, Python "
          f"{platform.python_version()}, ray {ray.__version__}")  # fmt: skip
    try:
        started = time.monotonic()
        cluster.start()
        print(f"cluster start: {time.monotonic() - started:.1f} s")
        if args.only in (None, "overhead"):
            _overhead(root, cluster, context, args)
        if args.only in (None, "memory") and not args.gpus:
            _memory(root, cluster, context)
        if args.only in (None, "throughput"):
            _throughput(root, cluster, context, args)
    finally:
        context.destroy(linger=0)
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


def _ray_config(root: Path, cluster: LocalRayCluster, name: str, replicas: int, gpus: float,
                step_s: float) -> DaemonConfig:  # fmt: skip
    settings = ClusterConfig(
        backend="ray", address=cluster.address, app=name, replicas=replicas,
        gpus_per_replica=gpus, cpus_per_replica=0.0 if gpus else 0.5,
        token_file=cluster.token_file, ready_timeout_s=300.0,
    )  # fmt: skip
    config = make_config(root / name, cluster=settings, max_queue=1024, max_per_artist=64)
    return with_overrides(config, engine={"step_s": step_s}, log_level="info")


def _phases(daemon: DaemonHandle, latencies: list[float], remote: bool) -> None:
    """Where a job's time goes, from the daemon's own log: the last ``len(latencies)`` jobs."""
    events = daemon.log_events()
    finished = [e for e in events if e.get("event") == "job_finished"][-len(latencies) :]
    ran = [e for e in events if e.get("event") == "batch_ran"][-len(latencies) :]
    wire = [lat - e["total_s"] for lat, e in zip(latencies, finished, strict=True)]
    queue = [e["queue_s"] for e in finished]
    run = [e["run_s"] for e in finished]
    print(f"    client <-> daemon (wire, admission, reply) {_ms(wire)}")
    print(f"    queued until a slot took the batch         {_ms(queue)}")
    if not remote:
        print(f"    run on the local device                    {_ms(run)}")
        return
    replica = [e["seconds"] for e in ran]
    ray_call = [r - s for r, s in zip(run, replica, strict=True)]
    print(f"    Serve call and result transfer (run - replica) {_ms(ray_call)}")
    print(f"    on the replica (engine thread, cancel watcher) {_ms(replica)}")


def _latencies(address: str, context: zmq.Context, jobs: int) -> list[float]:
    peer = Peer(context, address)
    peer.hello("bench")
    seconds = []
    for _ in range(jobs):
        started = time.perf_counter()
        request_id = peer.send(SMALL)
        peer.recv_until(Result, re=request_id, timeout_s=60)
        seconds.append(time.perf_counter() - started)
    peer.close()
    return seconds


def _overhead(root: Path, cluster: LocalRayCluster, context: zmq.Context, args: argparse.Namespace
              ) -> None:  # fmt: skip
    """Local and Ray daemons side by side, measured in alternating rounds (A/B, then B/A) in
    this one process, so both see the same machine state; the bare Serve calls in the same
    rounds give Ray's own floor."""
    per_round = max(1, args.jobs // args.rounds)
    local_config = with_overrides(make_config(root / "local"), log_level="info")
    config = _ray_config(root, cluster, "bench-overhead", 1, args.gpus, 0.0)
    handles: list[Any] = []  # this driver's own handle, for Ray's floor
    load_before = os.getloadavg()
    rounds: list[dict[str, list[float]]] = []
    cpu: dict[str, dict[str, float]] = {}  # measure -> process group -> CPU seconds
    try:
        backend = RayBackend.connect(config, stepping_engine)
        with (
            run_daemon(local_config, [TestEngine()]) as local_daemon,
            run_daemon(config, backend=backend) as remote_daemon,
        ):
            handle = serve.get_app_handle(config.cluster.app)
            handles.append(handle)
            board = start_board(60.0)
            measures: dict[str, Callable[[], list[float]]] = {
                "local": lambda: _latencies(local_daemon.address, context, per_round),
                "ray": lambda: _latencies(remote_daemon.address, context, per_round),
                "bare": lambda: _bare_calls(handle, per_round),
                "stream": lambda: _streamed_calls(handle, board, per_round),
            }
            for measure in measures.values():
                measure()  # warm the sockets, the handles and the replica
            groups = _process_groups(cluster, config.cluster.app)
            for index in range(args.rounds):
                order = list(measures) if index % 2 == 0 else list(reversed(measures))
                rounds.append({})
                for name in order:
                    before = _cpu_seconds(groups)
                    rounds[-1][name] = measures[name]()
                    spent = _cpu_seconds(groups)
                    for group, seconds in spent.items():
                        cpu.setdefault(name, {}).setdefault(group, 0.0)
                        cpu[name][group] += seconds - before[group]
    finally:
        leave(handles)
    load_after = os.getloadavg()
    pooled = {name: [s for r in rounds for s in r[name]] for name in rounds[0]}
    differences = [_median_gap(r["ray"], r["local"]) for r in rounds]
    print(f"latency per job, zero-cost engine, {args.rounds} alternating rounds x {per_round} "
          f"sequential jobs (load average {_load(load_before)} at start, {_load(load_after)} "
          "at end; median/p90 ms):")  # fmt: skip
    print(f"  local backend  {_ms(pooled['local'])}")
    print(f"  ray, 1 replica {_ms(pooled['ray'])}")
    print(f"  one bare Serve call (describe), same rounds: {_ms(pooled['bare'])}")
    print(f"  one batch's streamed Serve call as dispatch makes it, no daemon: "
          f"{_ms(pooled['stream'])}")  # fmt: skip
    print(f"  ray minus local per round (ms): {' '.join(f'{d * 1000:.1f}' for d in differences)}")
    print(f"  ray overhead per job (median of the rounds' differences): "
          f"{statistics.median(differences) * 1000:.2f} ms")  # fmt: skip
    streamed = statistics.median(_median_gap(r["stream"], r["bare"]) for r in rounds)
    print(f"  streamed batch call minus a bare Serve call (median of the rounds): "
          f"{streamed * 1000:.2f} ms")  # fmt: skip
    jobs = per_round * args.rounds
    print("  CPU per job or call, by process (ms; user + system, all cores):")
    print(f"    {'':8}" + "".join(f"{group:>16}" for group in groups))
    for name, spent in cpu.items():
        print(f"    {name:8}" + "".join(f"{spent[g] / jobs * 1000:16.2f}" for g in groups))
    print("  phases (median/p90 ms), local backend:")
    _phases(local_daemon, pooled["local"], remote=False)
    print("  phases (median/p90 ms), ray, 1 replica:")
    _phases(remote_daemon, pooled["ray"], remote=True)


def _median_gap(values: list[float], baseline: list[float]) -> float:
    return statistics.median(values) - statistics.median(baseline)


def _process_groups(cluster: LocalRayCluster, app: str) -> dict[str, list[int]]:
    """The processes whose CPU a job costs: this one (client, both daemons, Ray driver), the
    measured app's replica, and the rest of the cluster (raylet, GCS, Serve controller, the
    daemon's cancel board, other apps' idle replicas)."""
    replica = f"ServeReplica:{app}:".encode()
    groups: dict[str, list[int]] = {"bench+daemons": [os.getpid()], "replica": [], "ray other": []}
    for pid in cluster.pids():
        title = Path(f"/proc/{pid}/cmdline").read_bytes()
        groups["replica" if replica in title else "ray other"].append(pid)
    return groups


def _cpu_seconds(groups: dict[str, list[int]]) -> dict[str, float]:
    """CPU time used so far per group, from /proc/PID/schedstat (nanoseconds: clock ticks are
    too coarse for a few milliseconds per job)."""
    spent = {}
    for group, pids in groups.items():
        total = 0
        for pid in pids:
            try:
                for task in Path(f"/proc/{pid}/task").iterdir():
                    total += int((task / "schedstat").read_text().split()[0])
            except (FileNotFoundError, ProcessLookupError):
                continue  # a process or thread that ended: its time is gone with it
        spent[group] = total / 1e9
    return spent


def _bare_calls(handle: Any, calls: int) -> list[float]:
    seconds = []
    for _ in range(calls):
        started = time.perf_counter()
        handle.describe.remote().result(timeout_s=60)
        seconds.append(time.perf_counter() - started)
    return seconds


def _streamed_calls(handle: Any, board: Any, calls: int) -> list[float]:
    """The Serve call a dispatch slot makes for a 1-job batch, without the daemon around it."""
    seconds = []
    for _ in range(calls):
        job = JobSpec(f"bench-{uuid.uuid4().hex}", SMALL.prompt, 20, (1,), 5.0, 4, MODEL)
        started = time.perf_counter()
        for report in handle.options(stream=True).run.remote(BatchRequest((job,), board.name)):
            if report.outcome is not None:
                break
        seconds.append(time.perf_counter() - started)
    return seconds


def _load(load: tuple[float, float, float]) -> str:
    return "/".join(f"{value:.2f}" for value in load)


def _memory(root: Path, cluster: LocalRayCluster, context: zmq.Context) -> None:
    """Resident memory of each replica process per text-encoder layout, tiny model on the CPU
    (measured after one job, so everything a job touches is loaded)."""
    print("host memory per replica process (RSS after one job), tiny model, CPU:")
    tiny = ensure_tiny(root / "tiny")
    for layout in ("per_replica", "shared"):
        settings = ClusterConfig(
            backend="ray", address=cluster.address, app=f"bench-{layout}", replicas=1,
            gpus_per_replica=0.0, cpus_per_replica=0.5, text_encoders=layout,
            encoder_gpus_per_replica=0.0, encoder_cpus_per_replica=0.5,
            token_file=cluster.token_file, ready_timeout_s=300.0,
        )  # fmt: skip
        config = make_config(root / layout, engine={"tiny_dir": str(tiny)}, cluster=settings)
        try:
            with run_daemon(config, backend=RayBackend.connect(config)) as daemon:
                peer = Peer(context, daemon.address)
                peer.hello("bench")
                peer.recv_until(Result, re=peer.send(SMALL), timeout_s=120)
                peer.close()
                for pid in cluster.pids():
                    title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
                    if f"ServeReplica:bench-{layout}:" in title:
                        # the title ends DEPLOYMENT, or DEPLOYMENT.METHOD while it runs one
                        deployment = title.rsplit(":", 1)[1].split(".")[0]
                        print(f"  {layout:11} {deployment:14} {_rss_gb(pid):.2f} GB")
                serve.delete(config.cluster.app)
        finally:
            ray.shutdown()


def _rss_gb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / 1e9
    return float("nan")


def _burst(address: str, context: zmq.Context, jobs: int) -> float:
    clients = [Peer(context, address) for _ in range(20)]
    asked = []
    for i, peer in enumerate(clients):
        peer.hello(f"artist{i}")
    started = time.perf_counter()
    for k in range(jobs):
        peer = clients[k % len(clients)]
        asked.append((peer, peer.send(BUSY)))
    for peer, _ in asked:
        peer.recv_until(Result, re=None, timeout_s=120)
    seconds = time.perf_counter() - started
    for peer in clients:
        peer.close()
    return seconds


def _throughput(root: Path, cluster: LocalRayCluster, context: zmq.Context,
                args: argparse.Namespace) -> None:  # fmt: skip
    print(f"throughput, 20 clients, {args.jobs} jobs of 10 steps x {STEP_S * 1000:.0f} ms, "
          "batches of up to 8 jobs:")  # fmt: skip
    with run_daemon(make_config(root / "local-tp", max_queue=1024, max_per_artist=64),
                    [TestEngine(step_s=STEP_S)]) as daemon:  # fmt: skip
        base = _burst(daemon.address, context, args.jobs)
    print(f"  local backend, 1 device: {args.jobs / base:6.1f} jobs/s ({base:.2f} s)")
    for replicas in range(1, args.replicas_max + 1):
        config = _ray_config(root, cluster, f"bench-{replicas}", replicas, args.gpus, STEP_S)
        try:
            with run_daemon(config, backend=RayBackend.connect(config, stepping_engine)) as d:
                _burst(d.address, context, 20)  # warm
                seconds = _burst(d.address, context, args.jobs)
        finally:
            ray.shutdown()
        print(f"  ray, {replicas} replica(s):      {args.jobs / seconds:6.1f} jobs/s "
              f"({seconds:.2f} s, x{base / seconds:.2f} the local backend)")  # fmt: skip


def _ms(values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[int(0.9 * (len(ordered) - 1))]
    return f"{statistics.median(ordered) * 1000:7.2f} / {p90 * 1000:7.2f}"


if __name__ == "__main__":
    sys.exit(main())
