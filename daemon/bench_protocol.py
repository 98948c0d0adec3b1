"""``python -m daemon bench-protocol``: protocol and scheduler figures (prints, asserts nothing).

Runs real daemon processes (``tests.support.daemon_main``, the zero-cost test engine) on
loopback and measures from this process: ping round trip and the round trip of an 8 x 360
frame result (a ``fetch``), with and without CURVE; the protocol overhead per job
(end-to-end latency minus the engine's own seconds); scheduler throughput with 50 clients and
the daemon's CPU time per job while it serves them (Linux: read from ``/proc``; all threads, and
the event loop's thread alone).
A developer tool: it needs the repository's ``tests/support`` on the path (run from the root).
"""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import zmq

from daemon.cli import keygen
from shared_protocol import Error, Fetch, Generate, Hello, Ping, Pong, Result
from shared_protocol.keys import load_keypair, load_public_key

BIG = Generate(prompt="a person dances", duration_s=12.0, candidates=8, seed=1, steps=4)
SMALL = Generate(prompt="a person walks", duration_s=2.0, candidates=1, seed=1, steps=4)


#: What ``--only`` may pick; every part runs by default.
PARTS = ("round_trips", "scheduler")


def run_benchmarks(quick: bool, out: TextIO, parts: tuple[str, ...] = PARTS) -> None:
    rounds = 200 if quick else 2000
    context = zmq.Context()
    with tempfile.TemporaryDirectory(prefix="hymotion-bench-") as tmp:
        root = Path(tmp)
        print(f"machine: {platform.processor() or platform.machine()}, "
              f"{_cpus()} CPUs, Python {platform.python_version()}, "
              f"pyzmq {zmq.pyzmq_version()}, libzmq {zmq.zmq_version()}", file=out)  # fmt: skip
        if "round_trips" in parts:
            _round_trip_figures(context, root, rounds, out)
        if "scheduler" in parts:
            _scheduler_figures(context, root, 1 if quick else 5, out)
    context.term()


def _round_trip_figures(context: zmq.Context, root: Path, rounds: int, out: TextIO) -> None:
    from tests.support import DaemonProcess  # developer tool: the test engine lives in tests/

    curve_args, client_keys = _keys(root)
    print(f"rounds: {rounds} (median, p90, p99 in ms)", file=out)
    for label, args, keys in (("plain", [], {}), ("CURVE", curve_args, client_keys)):
        with DaemonProcess(root / label, ["--batch-window-s", "0", *args]) as daemon:
            peer = _Peer(context, daemon.address, keys)
            _round_trips(label, peer, rounds, out)
            peer.close()


def _scheduler_figures(context: zmq.Context, root: Path, rounds: int, out: TextIO) -> None:
    """Throughput of many small jobs from 50 clients, and what each job costs the daemon's CPU."""
    from tests.support import DaemonProcess

    with DaemonProcess(root / "load", ["--max-queue", "256", "--max-per-artist", "4"]) as d:
        assert d.proc is not None
        cpu_before = _cpu_s(d.proc.pid)
        jobs, seconds = 0, 0.0
        for _ in range(rounds):
            answered, took = _throughput(context, d.address, clients=50, each=4)
            jobs, seconds = jobs + answered, seconds + took
        cpu_after = _cpu_s(d.proc.pid)
    print(f"scheduler: 50 clients x 4 jobs x {rounds} rounds = {jobs} jobs in {seconds:.2f} s "
          f"= {jobs / seconds:.0f} jobs/s (zero-cost engine, default batching)",
          file=out)  # fmt: skip
    if cpu_before is not None and cpu_after is not None:
        process, loop = (1000 * (a - b) / jobs for a, b in zip(cpu_after, cpu_before, strict=True))
        print(f"daemon CPU per job: {process:.3f} ms (all threads), "
              f"{loop:.3f} ms (event loop thread)", file=out)  # fmt: skip


def _round_trips(label: str, peer: _Peer, rounds: int, out: TextIO) -> None:
    ping = _timed(rounds, lambda: peer.call(Ping(), Pong))
    print(f"{label:6} ping round trip            {_fmt(ping)}", file=out)
    job_id = peer.job(BIG).job_id
    fetch = _timed(rounds // 4, lambda: peer.call(Fetch(job_id=job_id), Result))
    print(f"{label:6} 8x360 result round trip    {_fmt(fetch)}", file=out)
    if label == "plain":
        overhead = _overhead(peer, rounds // 4)
        print(f"plain  protocol overhead per job  {_fmt(overhead)}", file=out)


class _Peer:
    def __init__(self, context: zmq.Context, address: str, keys: dict[str, bytes]) -> None:
        from tests.support.wire import Peer

        self.peer = Peer(context, address, **keys)
        self.peer.hello("bench")

    def call(self, message: Ping | Fetch, expect: type) -> object:
        msg_id = self.peer.send(message)
        return self.peer.recv_until(expect, re=msg_id)[1]

    def job(self, request: Generate) -> Result:
        msg_id = self.peer.send(request)
        result = self.peer.recv_until(Result, re=msg_id, timeout_s=60)[1]
        assert isinstance(result, Result)
        return result

    def close(self) -> None:
        self.peer.close()


def _overhead(peer: _Peer, rounds: int) -> list[float]:
    """End-to-end seconds of a 1-candidate job minus what the engine says it spent."""
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        result = peer.job(SMALL)
        total = time.perf_counter() - started
        engine = sum(result.timings.get(k, 0.0) for k in ("encode", "sample", "decode"))
        samples.append(total - engine)
    return samples


def _throughput(context: zmq.Context, address: str, clients: int, each: int) -> tuple[int, float]:
    from tests.support.wire import Peer

    peers = [Peer(context, address) for _ in range(clients)]
    for i, peer in enumerate(peers):
        peer.send(Hello(artist=f"artist{i}"))
        peer.recv()
    poller = zmq.Poller()
    for peer in peers:
        poller.register(peer.socket, zmq.POLLIN)
    started = time.perf_counter()
    for peer in peers:
        for _ in range(each):
            peer.send(SMALL)
    done = 0
    while done < clients * each:
        ready = dict(poller.poll(30_000))
        if not ready:
            raise TimeoutError(f"only {done} of {clients * each} jobs answered")
        for peer in peers:
            while peer.socket in ready and peer.socket.poll(0, zmq.POLLIN):
                _, message = peer.recv()
                done += isinstance(message, Result | Error)
    seconds = time.perf_counter() - started
    for peer in peers:
        peer.close()
    return done, seconds


def _cpu_s(pid: int) -> tuple[float, float] | None:
    """CPU seconds used so far by process ``pid`` (all its threads) and by its main thread (the
    daemon's event loop), from ``/proc/PID/task/*/schedstat`` (nanoseconds); None off Linux."""
    tasks = Path(f"/proc/{pid}/task")
    if not tasks.is_dir():
        return None
    per_task = {
        int(task.name): int((task / "schedstat").read_text().split()[0]) / 1e9
        for task in tasks.iterdir()
    }
    return sum(per_task.values()), per_task.get(pid, 0.0)


def _keys(root: Path) -> tuple[list[str], dict[str, bytes]]:
    keygen("server", None, root / "server")
    keygen("artist", "bench", root / "artist")
    allowed = root / "allowed"
    allowed.mkdir()
    shutil.copy(root / "artist" / "bench.key", allowed / "bench.key")
    pair = load_keypair(root / "artist" / "bench.key_secret")
    client = {
        "curve_serverkey": load_public_key(root / "server" / "server.key"),
        "curve_publickey": pair.public,
        "curve_secretkey": pair.secret,
    }
    args = ["--server-secret-key", str(root / "server" / "server.key_secret"),
            "--allowed-keys-dir", str(allowed)]  # fmt: skip
    return args, client


def _timed(rounds: int, fn: Callable[[], object]) -> list[float]:
    for _ in range(max(10, rounds // 10)):  # warm-up
        fn()
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return samples


def _fmt(samples: list[float]) -> str:
    ordered = sorted(samples)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return f"{statistics.median(ordered) * 1000:7.3f} {at(0.9):7.3f} {at(0.99):7.3f} ms"


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0
