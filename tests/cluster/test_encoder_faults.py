"""Shared text encoders that fail under a job: lost twice, or hung, on the session's cluster.

One app of its own: one engine replica of the real tiny model and two encoder replicas that
say when a call has reached them (tests/support/signalling_encoders.py: the real encoders,
holding each call until the test releases it). The faults are real: the replica process
holding the call is killed (SIGKILL) or stopped (SIGSTOP, resumed before the test ends). No
CPU is reserved (the session's other apps hold the cluster's four). The kills come last: the
replicas Serve starts in place of killed ones would take a model load to wait for.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
import zmq
from ray import serve
from ray.serve.context import _get_global_client

from daemon.cluster.app import ENCODERS
from daemon.cluster.backend import _driver_environment
from daemon.cluster.session import leave
from daemon.config import DaemonConfig
from shared_protocol import Cancelled, Error, Result
from tests.cluster.test_ray_backend import LAYOUTS, generate, ray_config, ray_daemon
from tests.support import DaemonHandle
from tests.support.ray_cluster import LocalRayCluster
from tests.support.signalling_encoders import EncoderSignals, SignallingEncoders
from tests.support.wire import Peer

pytestmark = pytest.mark.ray

_WAIT_S = 120.0
#: Short enough for two attempts in a few seconds; a released tiny encoding takes < 1 s.
ENCODE_TIMEOUT_S = 5.0
ENCODER_REPLICAS = 2


@pytest.fixture(scope="module")
def faults_config(
    ray_cluster: LocalRayCluster, tmp_path_factory: pytest.TempPathFactory, tiny_dir: Path
) -> Iterator[DaemonConfig]:
    """The app's settings (deployed by the first test's daemon); the app goes at the end."""
    root = tmp_path_factory.mktemp("encoder-faults")
    shutil.copytree(tiny_dir, root / "tiny")  # the signals folder goes next to it
    settings = {
        **LAYOUTS["shared"],
        "app": "hymotion-encoder-faults",
        "cpus_per_replica": 0.0,
        "encoder_cpus_per_replica": 0.0,
        "encoder_replicas": ENCODER_REPLICAS,
        "encode_timeout_s": ENCODE_TIMEOUT_S,
    }
    config = ray_config(root, ray_cluster, root / "tiny", **settings)
    yield config
    _driver_environment(config.cluster)
    ray.init(address=ray_cluster.address, namespace=config.cluster.namespace)
    try:
        serve.delete(config.cluster.app)  # frees its three processes for the tests after
    finally:
        leave([])


@contextlib.contextmanager
def faults_daemon(config: DaemonConfig) -> Iterator[tuple[DaemonHandle, EncoderSignals]]:
    """A daemon on the app, once both encoder replicas run in live processes (a test before
    may have killed them: Serve lists a killed replica as running until it notices), with no
    call seen or released yet."""
    signals = EncoderSignals(Path(config.engine["tiny_dir"]))
    signals.reset()
    with ray_daemon(config, encoder_class=SignallingEncoders) as daemon:
        deadline = time.monotonic() + _WAIT_S
        while len(pids := _live_encoder_pids(config)) < ENCODER_REPLICAS:
            assert time.monotonic() < deadline, f"encoder replicas in live processes: {pids}"
            time.sleep(0.2)
        yield daemon, signals


def _live_encoder_pids(config: DaemonConfig) -> list[int]:
    app = _get_global_client().get_serve_details()["applications"][config.cluster.app]
    replicas = app["deployments"][ENCODERS]["replicas"]
    running = [r["pid"] for r in replicas if r["state"] == "RUNNING"]
    return [pid for pid in running if _alive(pid)]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


def answer_faulting_callers(
    peer: Peer, request_id: str, signals: EncoderSignals, fault: Callable[[int], None]
) -> Any:
    """The one terminal answer to ``request_id``; meanwhile ``fault(pid)`` once for each
    encoder call that arrives (the pid of the replica process holding it)."""
    faulted = 0
    deadline = time.monotonic() + _WAIT_S
    while True:
        callers = signals.callers()
        for pid in callers[faulted:]:
            fault(pid)
        faulted = len(callers)
        try:
            envelope, message = peer.recv(timeout_s=0.05)
        except TimeoutError:
            assert time.monotonic() < deadline, f"no answer; encoder calls: {callers}"
            continue
        if isinstance(message, Result | Error | Cancelled) and envelope.re == request_id:
            return message


def encoder_calls_logged(cluster: LocalRayCluster) -> list[str]:
    """What the engine replicas logged about their encoder calls (for failure messages)."""
    logs = cluster.root / "ray" / "session_latest" / "logs"
    return [
        line
        for path in sorted(logs.glob("worker-*"))
        for line in path.read_text(errors="replace").splitlines()
        if "text-encoder call" in line
    ]


def assert_ran_once_on_the_engine_replica(logged: list[dict[str, Any]]) -> None:
    """The engine replica was fine: its batch ran once and answered, nothing was re-run."""
    names = [e["event"] for e in logged]
    assert names.count("batch_ran") == 1 and "replica_lost" not in names, names


def assert_answered_once(peer: Peer) -> None:
    with pytest.raises(TimeoutError):
        while True:
            _, extra = peer.recv(timeout_s=0.5)
            assert not isinstance(extra, Result | Error | Cancelled), extra


@contextlib.contextmanager
def stopped_processes() -> Iterator[list[int]]:
    """Pids a test stops (SIGSTOP); each is resumed at the end, whatever happened."""
    stopped: list[int] = []
    try:
        yield stopped
    finally:
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def test_a_hung_encoder_replica_costs_one_retry_on_the_other(
    faults_config: DaemonConfig, ray_cluster: LocalRayCluster, context: zmq.Context
) -> None:
    """The replica holding the call is stopped: after encode_timeout_s the call is sent once
    more, Serve's router gives it to the other replica (the stopped one still holds one), and
    that one encodes: the job gets its result."""
    with faults_daemon(faults_config) as (daemon, signals), stopped_processes() as stopped:
        peer = Peer(context, daemon.address)
        peer.hello("alice")
        logged = len(daemon.log_events())  # the module's daemons share one log
        request_id = generate(peer, seed=2)

        def stop_the_first_release_the_next(pid: int) -> None:
            if stopped:
                signals.release()
                return
            os.kill(pid, signal.SIGSTOP)
            stopped.append(pid)

        answer = answer_faulting_callers(peer, request_id, signals, stop_the_first_release_the_next)
        callers = signals.callers()
        if not isinstance(answer, Result):
            print("calls:", signals.arrivals(), "released:", signals.released(), sep="\n")
            print(*encoder_calls_logged(ray_cluster), sep="\n")
        assert isinstance(answer, Result), answer
        assert len(callers) == 2 and callers[0] != callers[1], callers
        assert_answered_once(peer)
        peer.close()
        assert_ran_once_on_the_engine_replica(daemon.log_events()[logged:])


def test_encoders_that_hang_on_both_attempts_get_encoder_timeout_before_the_step_timeout(
    faults_config: DaemonConfig, context: zmq.Context
) -> None:
    """Every replica that takes the call is stopped: the engine replica answers after two
    encode_timeout_s with encoder_timeout, well before the daemon's step_timeout_s would count
    the engine replica lost and re-run the batch elsewhere."""
    with faults_daemon(faults_config) as (daemon, signals), stopped_processes() as stopped:
        peer = Peer(context, daemon.address)
        peer.hello("alice")
        logged = len(daemon.log_events())  # the module's daemons share one log
        request_id = generate(peer, seed=3)

        def stop(pid: int) -> None:
            if pid not in stopped:
                os.kill(pid, signal.SIGSTOP)
                stopped.append(pid)

        answer = answer_faulting_callers(peer, request_id, signals, stop)
        assert isinstance(answer, Error) and answer.code == "model_unavailable", answer
        assert answer.details["reason"] == "encoder_timeout"
        assert answer.details["timeout_s"] == ENCODE_TIMEOUT_S
        assert (
            f"the last attempt had no answer within cluster.encode_timeout_s = "
            f"{ENCODE_TIMEOUT_S:g} s" in answer.message
        )
        assert stopped
        assert_answered_once(peer)
        peer.close()
        assert_ran_once_on_the_engine_replica(daemon.log_events()[logged:])


def test_an_encoding_lost_on_both_attempts_gets_encoder_lost(
    faults_config: DaemonConfig, context: zmq.Context
) -> None:
    """Every encoder replica that takes the call is killed while it holds it. The engine
    replica counts the losses it sees (two), whatever Serve's router re-sent on its own."""
    with faults_daemon(faults_config) as (daemon, signals):
        peer = Peer(context, daemon.address)
        peer.hello("alice")
        logged = len(daemon.log_events())  # the module's daemons share one log
        request_id = generate(peer, seed=1)
        killed: list[int] = []

        def kill(pid: int) -> None:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

        answer = answer_faulting_callers(peer, request_id, signals, kill)
        assert isinstance(answer, Error) and answer.code == "model_unavailable", answer
        assert answer.details["reason"] == "encoder_lost"
        assert "'text_encoders' failed to encode this batch's prompts 2 times" in answer.message
        assert "the last attempt lost its replica (ActorDiedError)" in answer.message
        assert len(killed) >= 2 and len(set(killed)) == len(killed), killed
        assert_answered_once(peer)
        peer.close()
        assert_ran_once_on_the_engine_replica(daemon.log_events()[logged:])
