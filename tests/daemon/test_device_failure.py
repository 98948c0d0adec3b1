"""A device that fails while serving: its jobs fail with ``model_unavailable``, it is reported in
``status``, ``welcome`` and the metrics, and the other devices keep serving (real daemon, real
sockets, the test engine's injected device fault)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from shared_protocol import (
    Accepted,
    Cancel,
    DeviceInfo,
    Error,
    Generate,
    Message,
    Progress,
    Result,
    Status,
    StatusRequest,
    Welcome,
)
from tests.support import BROKEN_MODEL, MODEL, TestEngine, make_config, run_daemon
from tests.support.wire import Peer

RESTART = "fix it (`python -m daemon check` says what it sees) and restart the daemon"


def _walk(seed: int, steps: int = 10) -> Generate:
    return Generate(prompt=f"walk {seed}", duration_s=1.0, candidates=1, seed=seed, steps=steps)


def _finals(peer: Peer, request_ids: Sequence[str]) -> dict[str, Message]:
    """The final answer (result or error) of every request, in whatever order they come."""
    finals: dict[str, Message] = {}
    while len(finals) < len(request_ids):
        envelope, message = peer.recv()
        if isinstance(message, (Result, Error)) and envelope.re in request_ids:
            finals[envelope.re] = message
    return finals


def _status(peer: Peer) -> Status:
    status = peer.recv_until(Status, re=peer.send(StatusRequest()))[1]
    assert isinstance(status, Status)
    return status


def test_a_failed_device_fails_its_batch_and_the_other_device_keeps_serving(
    tmp_path: Path, peers: Callable[..., Peer]
) -> None:
    broken = TestEngine(device="cpu:0", step_s=0.01, max_batch_candidates=1, device_fault_at_step=3)
    healthy = TestEngine(device="cpu:1", step_s=0.01, max_batch_candidates=1)
    config = make_config(tmp_path, devices=("cpu:0", "cpu:1"))
    with run_daemon(config, [broken, healthy]) as daemon:
        metrics = daemon.server.metrics
        assert metrics.value("hymotion_device_up", device="cpu:0") == 1
        peer = peers(daemon.address)
        peer.hello()
        ids = [peer.send(_walk(seed)) for seed in range(4)]
        finals = _finals(peer, ids)
        assert len(broken.calls) == 1  # it failed in its first batch and took no other
        (failed_job,) = broken.calls[0]
        errors = [m for m in finals.values() if isinstance(m, Error)]
        assert len(errors) == 1 and sum(isinstance(m, Result) for m in finals.values()) == 3
        error = errors[0]
        assert error.code == "model_unavailable" and error.details["device"] == "cpu:0"
        assert error.message == (
            "device cpu:0 failed while running this job (injected device fault); the daemon "
            "stopped using it; cpu:1 still serves: resubmit"
        )
        assert failed_job not in healthy.run_counts and sum(healthy.run_counts.values()) == 3
        status = _status(peer)
        assert status.devices == (
            DeviceInfo("cpu:0", "failed", "injected device fault"),
            DeviceInfo("cpu:1", "ok"),
        )
        welcome = peer.hello()
        assert isinstance(welcome, Welcome)
        assert {m.name: m.available for m in welcome.models} == {MODEL: True, BROKEN_MODEL: False}
        again = peer.send(_walk(9))  # the resubmission runs on the device left
        assert isinstance(_finals(peer, [again])[again], Result)
        assert len(broken.calls) == 1 and sum(healthy.run_counts.values()) == 4
        assert metrics.value("hymotion_device_up", device="cpu:0") == 0
        assert metrics.value("hymotion_device_up", device="cpu:1") == 1
        assert metrics.value("hymotion_device_failures_total", device="cpu:0") == 1
        assert metrics.value("hymotion_device_failures_total", device="cpu:1") == 0
        events = daemon.log_events()
    (event,) = [e for e in events if e["event"] == "device_failed"]
    assert event["device"] == "cpu:0" and event["jobs"] == [failed_job]
    assert event["log_id"] == error.details["log_id"] and "DeviceFailure" in event["traceback"]


def test_with_no_device_left_queued_jobs_fail_and_the_models_turn_unavailable(
    tmp_path: Path, peers: Callable[..., Peer]
) -> None:
    engine = TestEngine(step_s=0.02, max_batch_candidates=1, device_fault_at_step=5)
    with run_daemon(make_config(tmp_path), [engine]) as daemon:
        peer = peers(daemon.address)
        peer.hello()
        running = peer.send(_walk(1, steps=50))
        peer.until_running(running)
        queued = [peer.send(_walk(seed)) for seed in (2, 3)]
        finals = _finals(peer, [running, *queued])
        assert all(isinstance(m, Error) and m.code == "model_unavailable" for m in finals.values())
        messages = {rid: m.message for rid, m in finals.items() if isinstance(m, Error)}
        assert messages[running] == (
            "device cpu failed while running this job (injected device fault); the daemon "
            "stopped using it; no device is left"
        )
        for request_id in queued:
            assert messages[request_id] == (
                f"every device failed (cpu: injected device fault); {RESTART}"
            )
        assert engine.run_counts.total() == 1  # the queued jobs never reached the device
        welcome = peer.hello()
        assert isinstance(welcome, Welcome)
        models = {m.name: m for m in welcome.models}
        assert not models[MODEL].available
        assert models[MODEL].error == f"its device failed (cpu: injected device fault); {RESTART}"
        assert models[BROKEN_MODEL].error == "weights missing (test fixture)"  # its own reason
        refused = peer.send(_walk(4))
        _, error = peer.recv_until(Error, re=refused)
        assert isinstance(error, Error) and error.code == "model_unavailable"
        assert "its device failed (cpu: injected device fault)" in error.message
        assert _status(peer).devices == (DeviceInfo("cpu", "failed", "injected device fault"),)
        assert daemon.call(lambda: daemon.server.lifecycle.scheduler.depth) == 0
        assert daemon.call(daemon.server.backend.capacity) == 0


def test_after_a_device_fails_capacity_and_the_queue_eta_count_only_the_devices_left(
    tmp_path: Path, peers: Callable[..., Peer]
) -> None:
    broken = TestEngine(device="cpu:0", step_s=0.01, max_batch_candidates=1, device_fault_at_step=1)
    healthy = TestEngine(device="cpu:1", step_s=0.01, max_batch_candidates=1)
    config = make_config(tmp_path, devices=("cpu:0", "cpu:1"))
    with run_daemon(config, [broken, healthy]) as daemon:
        scheduler, backend = daemon.server.lifecycle.scheduler, daemon.server.backend
        assert daemon.call(backend.capacity) == 2
        peer = peers(daemon.address)
        peer.hello()
        _finals(peer, [peer.send(_walk(seed)) for seed in range(4)])  # one lands on cpu:0
        assert [d.state for d in _status(peer).devices] == ["failed", "ok"]
        assert daemon.call(backend.capacity) == 1
        busy = peer.send(_walk(10, steps=200))  # keeps cpu:1 busy while two more jobs wait
        _, accepted = peer.recv_until(Accepted, re=busy)
        assert isinstance(accepted, Accepted)
        peer.until_running(busy)
        waiting = [peer.send(_walk(seed)) for seed in (11, 12)]
        told = {}
        for request_id in waiting:
            _, progress = peer.recv_until(Progress, re=request_id)
            assert isinstance(progress, Progress) and progress.stage == "queued"
            told[progress.queue_position] = progress.eta_s
        one_batch, two_batches = daemon.call(lambda: (scheduler.wait_s(0), scheduler.wait_s(1)))
        # With one device left the second waiting job waits for two batches, not one.
        assert two_batches == 2 * one_batch
        assert told == {0: round(one_batch, 1), 1: round(two_batches, 1)}
        peer.send(Cancel(accepted.job_id))
        _finals(peer, waiting)
