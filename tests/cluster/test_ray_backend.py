"""The Ray Serve backend against a real local Ray cluster: two CPU replicas of the tiny model.

One cluster serves the whole run (``conftest.ray_cluster``); the first daemon deploys the app,
later ones find it warm. Every receive has a timeout (tests/support/wire.py).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import ray
import torch
import zmq
from ray import serve
from ray.serve.context import _get_global_client

from daemon.cluster.app import ENCODERS
from daemon.cluster.backend import RayBackend, _driver_environment
from daemon.cluster.config import ClusterConfig
from daemon.cluster.replica import EngineFactory
from daemon.cluster.session import leave
from daemon.cluster.text_replica import RemoteEncoders, TextEncoderReplica
from daemon.config import DaemonConfig, with_overrides
from daemon.engine.factory import EncoderKey, create_engine
from shared_protocol import (
    Accepted,
    Cancel,
    Cancelled,
    Error,
    Generate,
    Progress,
    Result,
    Status,
    StatusRequest,
    Welcome,
)
from tests.support import DaemonHandle, DaemonProcess, make_config, read_log, run_daemon
from tests.support.dying_encoders import DyingEncoders
from tests.support.engine import stepping_engine
from tests.support.ray_cluster import LocalRayCluster, free_port
from tests.support.runner import REPO_ROOT
from tests.support.wire import Peer

pytestmark = pytest.mark.ray

#: 5 s on the stepping engine: long enough to kill mid-run, short enough to finish.
LONG_STEPS = 100
#: The tiny model's shortest clip (20 frames).
SHORT_S = 0.67
_WAIT_S = 120.0
#: Ray ends a driver 60 s after it lost its head (RAY_gcs_rpc_server_reconnect_timeout_s).
_OUTAGE_S = 65.0


def ray_config(
    tmp_path: Path, cluster: LocalRayCluster, tiny_dir: Path, **overrides: Any
) -> DaemonConfig:
    settings: dict[str, Any] = {
        "backend": "ray",
        "address": cluster.address,
        "replicas": 2,
        "gpus_per_replica": 0.0,
        "cpus_per_replica": 0.5,
        "token_file": cluster.token_file,
        "step_timeout_s": 60.0,
        "ready_timeout_s": 240.0,
        "health_interval_s": 0.5,
    }
    settings.update(overrides)
    return make_config(
        tmp_path, engine={"tiny_dir": str(tiny_dir)}, cluster=ClusterConfig(**settings)
    )


def stepping_config(tmp_path: Path, cluster: LocalRayCluster, tiny_dir: Path) -> DaemonConfig:
    """A second app on the same cluster: TestEngine replicas taking 50 ms per sampler step,
    so "mid-job" and "within one step" do not depend on how loaded the machine is."""
    config = ray_config(tmp_path, cluster, tiny_dir, app="hymotion-stepping")
    return with_overrides(config, engine={"step_s": 0.05})


@contextmanager
def ray_daemon(
    config: DaemonConfig,
    factory: EngineFactory | None = None,
    encoder_class: type[TextEncoderReplica] = TextEncoderReplica,
) -> Iterator[DaemonHandle]:
    try:
        backend = RayBackend.connect(config, factory, encoder_class)
        with run_daemon(config, backend=backend) as daemon:
            yield daemon
    finally:
        if ray.is_initialized():  # a failed start must not leave this process joined
            ray.shutdown()


def write_config(tmp_path: Path, cluster: LocalRayCluster, tiny_dir: Path, more: str = "") -> Path:
    """A daemon.toml for ``python -m daemon serve`` on the tiny model with two replicas."""
    config_file = tmp_path / "daemon.toml"
    config_file.write_text(
        f'log_level = "debug"\n'
        f"grace_period_s = 120\n"
        f"[engine]\n"
        f'tiny_dir = "{tiny_dir}"\n'
        f"[cluster]\n"
        f'backend = "ray"\n'
        f'address = "{cluster.address}"\n'
        f"gpus_per_replica = 0\n"
        f"cpus_per_replica = 0.5\n"
        f'token_file = "{cluster.token_file}"\n'
        f"health_interval_s = 0.5\n" + (more or "replicas = 2\n")
    )
    return config_file


def generate(
    peer: Peer,
    seed: int,
    steps: int = 4,
    candidates: int = 1,
    duration_s: float = SHORT_S,
    model: str | None = None,
) -> str:
    message = Generate(prompt="a person walks", duration_s=duration_s, candidates=candidates,
                       seed=seed, steps=steps, model=model)  # fmt: skip
    return peer.send(message)


def final_of(peer: Peer, request_id: str, timeout_s: float = _WAIT_S) -> Any:
    """The one terminal message (result, error or cancelled) answering ``request_id``."""
    _, message = peer.recv_until((Result, Error, Cancelled), re=request_id, timeout_s=timeout_s)
    return message


def events(daemon: DaemonHandle, name: str) -> list[dict[str, Any]]:
    return [e for e in daemon.log_events() if e.get("event") == name]


@pytest.fixture(scope="module")
def local_result(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Result:
    """The local backend's answer to ``generate(seed=11, candidates=2)`` on the tiny model."""
    config = make_config(tmp_path_factory.mktemp("local"), engine={"tiny_dir": str(tiny_dir)})
    engine = create_engine({"tiny_dir": str(tiny_dir)}, "cpu")
    context = zmq.Context()
    # On the CPU, float sums depend on the thread count; Ray gives a replica with
    # num_cpus < 1 one thread, so the local engine runs with one too.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with run_daemon(config, [engine]) as daemon:
            peer = Peer(context, daemon.address)
            peer.hello("alice")
            result = final_of(peer, generate(peer, seed=11, candidates=2))
            peer.close()
    finally:
        torch.set_num_threads(threads)
        context.destroy(linger=0)
    assert isinstance(result, Result), result
    return result


#: The session's two-replica app, and an app of one engine replica whose text encoders run in
#: a deployment of their own.
LAYOUTS = {
    "per_replica": {},
    "shared": {
        "app": "hymotion-shared",
        "replicas": 1,
        "text_encoders": "shared",
        "encoder_gpus_per_replica": 0.0,
        "encoder_cpus_per_replica": 0.5,
    },
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_results_equal_the_local_backend_bit_for_bit(
    tmp_path: Path,
    ray_cluster: LocalRayCluster,
    tiny_dir: Path,
    context: zmq.Context,
    local_result: Result,
    layout: str,
) -> None:
    config = ray_config(tmp_path, ray_cluster, tiny_dir, **LAYOUTS[layout])
    with ray_daemon(config) as daemon:
        peer = Peer(context, daemon.address)
        peer.hello("alice")
        remote = final_of(peer, generate(peer, seed=11, candidates=2))
        peer.close()
        # Encoders loaded in a process map the tokenizers library (the tiny model's Qwen3
        # tokenizer is a fast one); a shared layout's engine replica never loads them.
        replica_pid = daemon.server.backend.engine.profile.replica.pid
        maps = Path(f"/proc/{replica_pid}/maps").read_text()
        assert ("tokenizers" in maps) == (layout == "per_replica")
        if layout == "shared":
            deployments = serve.status().applications[config.cluster.app].deployments
            assert deployments[ENCODERS].replica_states == {"RUNNING": 1}
    local = local_result
    assert isinstance(remote, Result), remote
    for name in ("rotations", "root_positions", "joint_positions"):
        assert np.array_equal(getattr(local, name), getattr(remote, name)), name
    assert (local.model_label, local.seeds, local.untrained) == (
        remote.model_label,
        remote.seeds,
        remote.untrained,
    )
    assert remote.skeleton.joint_names == local.skeleton.joint_names


def test_an_encoder_replica_dying_mid_encode_costs_a_retry_not_the_encoding(
    tmp_path: Path, ray_cluster: LocalRayCluster, tiny_dir: Path
) -> None:
    """RemoteEncoders (an engine replica's client of the shared encoders) over a real Serve
    deployment whose replica process dies inside the call: the replica Serve starts in place
    of the dead one answers. (Serve's router sometimes re-sends the call itself; when it
    raises ActorDiedError instead, RemoteEncoders sends it once more.)"""
    deaths_file = tmp_path / "deaths"
    deaths_file.write_text("1")
    config = ray_config(tmp_path, ray_cluster, tiny_dir)
    _driver_environment(config.cluster)
    ray.init(address=ray_cluster.address, namespace=config.cluster.namespace)
    handles: list[Any] = []
    try:
        app = serve.deployment(DyingEncoders, ray_actor_options={"num_cpus": 0})
        handles.append(serve.run(app.bind(str(deaths_file)), name="dying", route_prefix=None))
        encoders = RemoteEncoders(handles[0], EncoderKey("clip", "qwen", False), _WAIT_S)
        assert encoders.encode(["a person walks"]) == ["a person walks"]
        assert deaths_file.read_text() == "0"
        serve.delete("dying")
    finally:
        leave(handles)


def test_shared_encoders_that_cannot_load_make_their_model_unavailable_with_the_reason(
    tmp_path: Path, ray_cluster: LocalRayCluster, tiny_dir: Path, context: zmq.Context
) -> None:
    broken = tmp_path / "tiny"
    shutil.copytree(tiny_dir, broken)
    (broken / "qwen3" / "config.json").unlink()  # the encoder replica cannot load Qwen3
    # no CPUs reserved: the session's apps hold its four
    settings = {**LAYOUTS["shared"], "app": "hymotion-broken", "encoder_cpus_per_replica": 0.0}
    config = ray_config(tmp_path, ray_cluster, broken, **settings, cpus_per_replica=0.0)
    with ray_daemon(config) as daemon:
        peer = Peer(context, daemon.address)
        welcome = peer.hello("alice")
        assert isinstance(welcome, Welcome)
        [tiny] = welcome.models
        assert not tiny.available
        assert f"{broken / 'qwen3'}: shared text encoders: " in tiny.error
        refused = final_of(peer, generate(peer, seed=1))
        assert isinstance(refused, Error) and refused.code == "model_unavailable", refused
        assert "shared text encoders" in refused.message
        peer.close()


def test_twenty_clients_two_jobs_each_answered_once_on_both_replicas(
    tmp_path: Path, ray_cluster: LocalRayCluster, tiny_dir: Path, context: zmq.Context
) -> None:
    with ray_daemon(ray_config(tmp_path, ray_cluster, tiny_dir)) as daemon:
        clients = [Peer(context, daemon.address) for _ in range(20)]
        asked: dict[str, Peer] = {}
        for i, peer in enumerate(clients):
            peer.hello(f"artist{i}")
            for k in range(2):
                asked[generate(peer, seed=100 * i + k)] = peer
        answers: Counter[str] = Counter()
        deadline = time.monotonic() + 3 * _WAIT_S
        for peer in clients:
            mine = {request_id for request_id, p in asked.items() if p is peer}
            # until both are answered, then until 0.2 s of silence: a second answer would show
            with pytest.raises(TimeoutError):
                while True:
                    done = mine <= set(answers)
                    left = 0.2 if done else max(1.0, deadline - time.monotonic())
                    envelope, message = peer.recv(timeout_s=left)
                    if isinstance(message, Result | Error | Cancelled):
                        assert isinstance(message, Result), message
                        answers[envelope.re or ""] += 1
            assert mine <= set(answers)
            peer.close()
        assert set(answers) == set(asked) and set(answers.values()) == {1}
        ran = events(daemon, "batch_ran")
        assert sum(len(e["jobs"]) for e in ran) == 40
        replicas = {e["replica"] for e in ran}
        assert len(replicas) == 2, ran
        jobs_total = sum(
            daemon.server.metrics.value(
                "hymotion_replica_jobs_total", replica=e["replica"], node=e["node"]
            )
            for e in {e["replica"]: e for e in ran}.values()
        )
        assert jobs_total == 40
        # No local device serves here, so no hymotion_device_* series claims one does.
        device_up = [f for f in daemon.server.metrics.families if f.name == "hymotion_device_up"]
        assert [f.series for f in device_up] == [{}]


def test_cancel_frees_the_replica_within_one_step(
    tmp_path: Path, ray_cluster: LocalRayCluster, tiny_dir: Path, context: zmq.Context
) -> None:
    config = stepping_config(tmp_path, ray_cluster, tiny_dir)
    with ray_daemon(config, stepping_engine) as daemon:
        peer = Peer(context, daemon.address)
        peer.hello("alice")
        request_id = generate(peer, seed=5, steps=200)
        _, accepted = peer.recv_until(Accepted, re=request_id, timeout_s=_WAIT_S)
        assert isinstance(accepted, Accepted)
        seen = 0
        while seen < 2:  # into the sampler
            _, progress = peer.recv_until(Progress, re=request_id, timeout_s=_WAIT_S)
            assert isinstance(progress, Progress)
            seen = progress.step if progress.stage == "sampling" else 0
        cancel_id = peer.send(Cancel(job_id=accepted.job_id))
        after: list[int] = []
        while True:
            envelope, message = peer.recv(timeout_s=_WAIT_S)
            if isinstance(message, Progress) and message.stage == "sampling":
                after.append(message.step)
            if isinstance(message, Cancelled | Error | Result) and envelope.re == request_id:
                assert isinstance(message, Cancelled), message
                break
        # the step under way when the cancel arrived may finish and report; no other
        assert len(after) <= 2, after
        assert daemon.call(lambda: daemon.server.backend.running()) == []
        assert cancel_id
        peer.close()


def test_a_replica_killed_mid_job_loses_and_repeats_nothing(
    tmp_path: Path, ray_cluster: LocalRayCluster, tiny_dir: Path, context: zmq.Context
) -> None:
    config = stepping_config(tmp_path, ray_cluster, tiny_dir)
    with ray_daemon(config, stepping_engine) as daemon:
        peer = Peer(context, daemon.address)
        peer.hello("alice")
        doomed = generate(peer, seed=21, steps=LONG_STEPS)
        peer.until_running(doomed, timeout_s=_WAIT_S)
        deadline = time.monotonic() + 10
        while not (dispatched := events(daemon, "batch_dispatched")):
            assert time.monotonic() < deadline, "no batch_dispatched log event"
            time.sleep(0.05)
        victim = dispatched[-1]
        os.kill(victim["pid"], signal.SIGKILL)
        message = final_of(peer, doomed)
        assert isinstance(message, Result), message
        with pytest.raises(TimeoutError):  # exactly one answer
            while True:
                _, extra = peer.recv(timeout_s=0.5)
                assert not isinstance(extra, Result | Error | Cancelled), extra
        peer.close()
        lost = events(daemon, "replica_lost")
        assert [(e["replica"], e["pid"], e["rerun"]) for e in lost] == [
            (victim["replica"], victim["pid"], True)
        ]
        ran = events(daemon, "batch_ran")
        assert [e["replica"] for e in ran] != [victim["replica"]]
        assert len(ran) == 1
        metrics = daemon.server.metrics
        assert (
            metrics.value(
                "hymotion_replica_errors_total",
                replica=victim["replica"],
                node=victim["node"],
                kind="lost",
            )
            == 1
        )


def test_autoscaling_adds_a_replica_for_a_waiting_batch_and_the_eta_follows(
    tmp_path: Path, ray_cluster: LocalRayCluster, tiny_dir: Path, context: zmq.Context
) -> None:
    """min 1 / max 2 replicas: Serve gets the settings and starts one replica; the daemon keeps
    two dispatch slots, but its ETA divides by the one that is live. A batch waiting at the
    router while another runs is queue that only the daemon's handle knows of: the handle
    reports it to Serve's controller (every 10 s), which adds a replica."""
    config = ray_config(
        tmp_path, ray_cluster, tiny_dir, app="hymotion-autoscale", min_replicas=1,
        max_replicas=2, upscale_delay_s=0.5,
    )  # fmt: skip
    with ray_daemon(config, stepping_engine) as daemon:
        details = _get_global_client().get_serve_details()["applications"]["hymotion-autoscale"]
        engine = details["deployments"]["engine"]
        autoscaling = engine["deployment_config"]["autoscaling_config"]
        assert (autoscaling["min_replicas"], autoscaling["max_replicas"]) == (1, 2)
        assert autoscaling["target_ongoing_requests"] == 1
        assert (autoscaling["upscale_delay_s"], autoscaling["downscale_delay_s"]) == (0.5, 600)
        assert [r["state"] for r in engine["replicas"]] == ["RUNNING"]
        backend = daemon.server.backend
        assert len(backend.slots) == 2 and daemon.call(backend.capacity) == 1
        scheduler = daemon.server.lifecycle.scheduler
        # one job queued ahead plus the running batch: 2 rounds on 1 replica, 1 round on 2
        assert daemon.call(lambda: scheduler.wait_s(1) / scheduler.wait_s(0)) == 2.0

        # Three 10 s batches (step counts differ: no two share a batch): one runs, one waits
        # at the router, the third in the daemon's queue, then at the router: 20 s of waiting.
        peers = [Peer(context, daemon.address) for _ in range(3)]
        asked = []
        for i, peer in enumerate(peers):
            peer.hello(f"artist{i}")
            asked.append(generate(peer, seed=i, steps=200 - i))
        deadline = time.monotonic() + _WAIT_S
        while daemon.call(backend.capacity) < 2:
            assert time.monotonic() < deadline, "Serve added no replica for the waiting batch"
            time.sleep(0.1)
        scaled = events(daemon, "cluster_replicas")[-1]
        assert scaled["running"] == 2, scaled
        assert daemon.call(lambda: scheduler.wait_s(1) / scheduler.wait_s(0)) == 1.0
        for peer, request_id in zip(peers, asked, strict=True):
            assert isinstance(final_of(peer, request_id), Result)
            peer.close()
        # the batches' handle, whose router runs on the daemon's loop
        router = daemon.call(backend._context.calls.streaming)._router._asyncio_router
    # Stopping the daemon stopped what Serve would keep running in this process: the queue
    # reports (which failed with "owner is unknown" once the next session began) and polls.
    assert router._metrics_manager._shutdown
    assert not router._metrics_manager.metrics_pusher._async_tasks
    assert not router.long_poll_client.is_running


def test_sigterm_drains_the_running_job(
    tmp_path: Path, ray_cluster: LocalRayCluster, tiny_dir: Path, context: zmq.Context
) -> None:
    config_file = write_config(tmp_path, ray_cluster, tiny_dir)
    daemon = DaemonProcess(
        tmp_path,
        ["--config", str(config_file)],
        entry=DaemonProcess.REAL_ENGINE,
        start_timeout_s=_WAIT_S,
    )
    with daemon:
        peer = Peer(context, daemon.address)
        peer.hello("alice")
        request_id = generate(peer, seed=3, steps=8)
        peer.until_running(request_id, timeout_s=_WAIT_S)
        daemon.signal(signal.SIGTERM)
        message = final_of(peer, request_id)
        assert isinstance(message, Result), message
        assert daemon.wait(_WAIT_S) == 0
        peer.close()


def test_an_unreachable_cluster_is_refused_at_start_with_exit_2(tmp_path: Path) -> None:
    config_file = tmp_path / "daemon.toml"
    port = free_port()  # nothing listens there
    config_file.write_text(f'[cluster]\nbackend = "ray"\naddress = "127.0.0.1:{port}"\n')
    done = subprocess.run(
        [sys.executable, "-m", "daemon", "serve", "--config", str(config_file),
         "--data-dir", str(tmp_path), "--log-stderr", "false"],
        cwd=REPO_ROOT, env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert f"cannot reach the Ray cluster at '127.0.0.1:{port}'" in done.stderr
    assert "ray start --head" in done.stderr


@pytest.mark.timeout(600)
def test_ray_lost_then_back_fails_admitted_jobs_and_refuses_new_ones_until_it_returns(
    tmp_path: Path, tiny_dir: Path, context: zmq.Context
) -> None:
    """A head of its own (own ports), stopped with every Ray process and started again on the
    same port: the daemon (a process: the Ray driver that loses its cluster) answers `busy`
    meanwhile, outlives Ray's 60 s limit for a lost head, and rejoins by itself. The operator
    owns the app (deploy = false) and deploys it back with another model: the daemon serves
    the models the cluster has now."""
    root = Path(tempfile.mkdtemp(prefix="hm-ray-lost-"))  # short: Ray's socket path limit
    cluster = LocalRayCluster(root, num_cpus=1).start()

    def app_serving(model: str) -> dict[str, Any]:
        engine = {"tiny_dir": str(tiny_dir), "models": {model: "tiny"}}
        return {"engine": engine, "gpus_per_replica": 0, "cpus_per_replica": 0.5}

    try:
        cluster.deploy("lost", app_serving("before"))
        more = 'app = "lost"\nreplicas = 1\ndeploy = false\n'
        config_file = write_config(tmp_path, cluster, tiny_dir, more)
        daemon = DaemonProcess(
            tmp_path, ["--config", str(config_file)], entry=DaemonProcess.REAL_ENGINE,
            start_timeout_s=_WAIT_S,
        )  # fmt: skip
        with daemon:
            peer = Peer(context, daemon.address)
            peer.hello("alice")
            running = generate(peer, seed=1, steps=200, duration_s=12.0)
            peer.until_running(running, timeout_s=_WAIT_S)
            cluster.stop()  # the head node restarted: every Ray process is gone
            failed = final_of(peer, running)
            assert isinstance(failed, Error) and failed.code == "model_unavailable", failed
            assert failed.details["reason"] == "cluster_unavailable"
            refused = final_of(peer, generate(peer, seed=2))
            assert isinstance(refused, Error) and refused.code == "busy", refused
            assert refused.details["reason"] == "cluster_unavailable"
            assert 1.0 <= refused.details["retry_after_s"] <= 2.0  # spread over one estimate
            # admission knows the models the cluster served before it was lost
            unknown = final_of(peer, generate(peer, seed=2, model="after"))
            assert isinstance(unknown, Error) and unknown.code == "model_unavailable", unknown
            time.sleep(_OUTAGE_S)  # longer than Ray lets a driver live without its head
            cluster.start()  # same port and token
            cluster.deploy("lost", app_serving("after"))  # the daemon waits for it meanwhile
            deadline = time.monotonic() + 2 * _WAIT_S
            while True:  # a job for the vanished model: busy until the daemon has rejoined
                answer = final_of(peer, generate(peer, seed=3, model="before"))
                if not (isinstance(answer, Error) and answer.code == "busy"):
                    break
                assert answer.details["reason"] == "cluster_unavailable"
                assert time.monotonic() < deadline, "the daemon did not rejoin the cluster"
                time.sleep(answer.details["retry_after_s"])
            assert isinstance(answer, Error) and answer.code == "model_unavailable", answer
            assert (answer.details["field"], answer.details["allowed"]) == ("model", "after")
            assert isinstance(final_of(peer, generate(peer, seed=3, model="after")), Result)
            welcome = peer.hello("alice")
            assert isinstance(welcome, Welcome)
            assert ([m.name for m in welcome.models], welcome.default_model) == (["after"], "after")
            _, status = peer.recv_until(Status, re=peer.send(StatusRequest()), timeout_s=_WAIT_S)
            assert isinstance(status, Status) and [m.name for m in status.models] == ["after"]
            peer.close()
            daemon.signal(signal.SIGTERM)
            assert daemon.wait(_WAIT_S) == 0, daemon.stderr_text()[-4000:]
        log = read_log(daemon.log_path)
        logged = [e["event"] for e in log]
        after = logged[logged.index("cluster_unreachable") :]
        assert after.index("cluster_rejoined") < after.index("cluster_back")
        [rejoined] = [e for e in log if e["event"] == "cluster_rejoined"]
        assert rejoined["models"] == {"after": True}
        assert after.index("cluster_left") < after.index("shutdown_done")
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
