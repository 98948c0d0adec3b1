"""Quota usage: counted per UTC window, saved write-behind, never lost by a clean stop.

The book runs on a clock the test moves (``tests.support.clock``); the daemon's own saving is
checked on real daemon processes stopped by SIGTERM / SIGINT and killed by SIGKILL.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from daemon.config import QuotaLimits
from daemon.quotas import SAVE_INTERVAL_S, QuotaBook
from shared_protocol import Generate, QuotaExceeded, Result
from tests.support import DaemonProcess
from tests.support.clock import ManualClock
from tests.support.wire import Peer

HOUR = 3600.0
#: Ten hours and a bit into a UTC day: far from a window's edge.
T0 = 10 * HOUR + 100.0
SMALL = Generate(prompt="a person walks", duration_s=1.0, candidates=1, seed=1, steps=4)


def _book(
    path: Path,
    clock: ManualClock,
    limits: Callable[[str], QuotaLimits] = lambda artist: QuotaLimits(),
    on_unsaved: Callable[[str], None] = lambda error: None,
) -> QuotaBook:
    return QuotaBook(
        limits, path, clock.call_later, clock=clock, monotonic=clock, on_unsaved=on_unsaved
    )


def _saved(path: Path, artist: str = "alice") -> tuple[int, float]:
    """The hour window's (jobs, GPU-seconds) of ``artist`` in a usage file."""
    _, jobs, gpu_s = json.loads(path.read_text(encoding="utf-8"))[artist]["hour"]
    return jobs, gpu_s


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every usage file the book writes (its atomic ``os.replace``), in order."""
    written: list[str] = []

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        written.append(str(dst))
        os.rename(src, dst)

    monkeypatch.setattr("daemon.quotas.os.replace", replace)
    return written


# --- the book, on a clock the test moves ----------------------------------------------------


def test_a_burst_is_written_at_once_then_once_more_when_the_interval_ends(
    tmp_path: Path, writes: list[str]
) -> None:
    clock, path = ManualClock(T0), tmp_path / "usage.json"
    book = _book(path, clock)
    book.charge_job("alice")  # nothing saved for an interval: written at once
    assert _saved(path) == (1, 0.0) and len(writes) == 1
    for _ in range(99):
        book.charge_job("alice")
        book.charge_gpu("alice", 0.5)
    assert _saved(path) == (1, 0.0) and len(writes) == 1  # 198 charges, no write
    assert len(clock.pending) == 1  # one deferred save takes them all
    clock.advance(SAVE_INTERVAL_S * 0.99)
    assert len(writes) == 1
    clock.advance(SAVE_INTERVAL_S * 0.01)
    assert _saved(path) == (100, 49.5) and len(writes) == 2
    clock.advance(10 * SAVE_INTERVAL_S)
    assert len(writes) == 2  # nothing unsaved: nothing written, no timer left
    assert clock.pending == []
    book.charge_job("alice")  # quiet for an interval: written at once again
    assert _saved(path) == (101, 49.5) and len(writes) == 3


def test_steady_charges_are_written_at_most_once_per_interval_and_never_later(
    tmp_path: Path, writes: list[str]
) -> None:
    """What docs/operations.md promises: a crash loses at most the last interval's charges."""
    clock, path = ManualClock(T0), tmp_path / "usage.json"
    book = _book(path, clock)
    charged_at: list[float] = []
    for _ in range(1000):  # one job every 10 ms for 10 s
        book.charge_job("alice")
        charged_at.append(clock.now)
        clock.advance(0.01)
        older = sum(1 for t in charged_at if t <= clock.now - SAVE_INTERVAL_S)
        assert _saved(path)[0] >= older
    assert len(writes) <= 10 / SAVE_INTERVAL_S + 1


def test_save_writes_what_is_pending_and_drops_the_deferred_save(
    tmp_path: Path, writes: list[str]
) -> None:
    clock, path = ManualClock(T0), tmp_path / "usage.json"
    book = _book(path, clock)
    book.charge_job("alice")
    book.charge_job("alice")
    book.save()  # the daemon's stop
    assert _saved(path) == (2, 0.0) and len(writes) == 2
    assert clock.pending == []
    book.save()  # nothing unsaved: no write
    clock.advance(10 * SAVE_INTERVAL_S)
    assert len(writes) == 2


def test_quotas_reset_with_their_window_and_survive_a_restart(tmp_path: Path) -> None:
    clock, path = ManualClock(T0), tmp_path / "usage.json"
    limits = {"alice": QuotaLimits(jobs_per_hour=2, gpu_seconds_per_day=10.0)}
    book = _book(path, clock, lambda a: limits.get(a, QuotaLimits()))
    book.charge_job("alice")
    book.charge_job("alice")
    with pytest.raises(QuotaExceeded) as hourly:
        book.check("alice")
    assert hourly.value.resets_at == 11 * HOUR and hourly.value.limit == "jobs_per_hour"
    book.check("bob")  # unlimited by default
    book.save()
    restarted = _book(path, clock, lambda a: limits.get(a, QuotaLimits()))
    with pytest.raises(QuotaExceeded):
        restarted.check("alice")
    clock.now = 11 * HOUR + 1.0  # next hour
    restarted.check("alice")
    restarted.charge_gpu("alice", 10.5)
    with pytest.raises(QuotaExceeded) as daily:
        restarted.check("alice")
    assert daily.value.limit == "gpu_seconds_per_day" and daily.value.resets_at == 86400


def test_a_damaged_usage_file_does_not_stop_the_daemon(tmp_path: Path) -> None:
    path = tmp_path / "usage.json"
    path.write_text("{not json")
    book = _book(path, ManualClock(T0), lambda a: QuotaLimits(jobs_per_day=1))
    assert book.load_error is not None
    book.check("alice")


def test_a_bad_disk_is_reported_once_per_failed_save_and_loses_nothing_when_it_recovers(
    tmp_path: Path,
) -> None:
    unsaved: list[str] = []
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    clock, path = ManualClock(T0), blocker / "usage.json"
    book = _book(path, clock, lambda a: QuotaLimits(jobs_per_hour=50), unsaved.append)
    for _ in range(50):
        book.charge_job("alice")
    assert len(unsaved) == 1 and "a-file" in unsaved[0]  # the save at once; not 50 lines
    clock.advance(SAVE_INTERVAL_S)
    assert len(unsaved) == 2  # the deferred save failed too
    with pytest.raises(QuotaExceeded):  # still counted in memory
        book.check("alice")
    clock.advance(10 * SAVE_INTERVAL_S)
    assert len(unsaved) == 2  # no retries while nothing is charged
    blocker.unlink()  # the disk is fine again
    book.charge_job("alice")
    assert _saved(path) == (51, 0.0) and len(unsaved) == 2


# --- a real daemon ---------------------------------------------------------------------------


def _run_jobs(peer: Peer, count: int) -> None:
    """``count`` small jobs sent at once (the daemon batches them), every result received."""
    ids = [peer.send(SMALL) for _ in range(count)]
    for msg_id in ids:
        peer.recv_until(Result, re=msg_id, timeout_s=30)


def _usage_path(daemon: DaemonProcess) -> Path:
    return daemon.data_dir / "state" / "usage.json"


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_a_clean_stop_saves_every_charge(
    tmp_path: Path, peers: Callable[..., Peer], stop: signal.Signals
) -> None:
    daemon = DaemonProcess(tmp_path, ["--max-per-artist", "40"]).start()
    try:
        peer = peers(daemon.address)
        peer.hello("alice")
        _run_jobs(peer, 40)
        daemon.signal(stop)
        assert daemon.wait(30) == 0
    finally:
        daemon.kill()
    jobs, gpu_s = _saved(_usage_path(daemon))
    assert jobs == 40 and gpu_s > 0
    assert not any(e["event"] == "quota_usage_unsaved" for e in daemon.log_events())


@pytest.mark.slow
def test_a_killed_daemon_lost_at_most_the_charges_of_its_last_interval(
    tmp_path: Path, peers: Callable[..., Peer]
) -> None:
    daemon = DaemonProcess(tmp_path, ["--max-per-artist", "40"]).start()
    path = _usage_path(daemon)
    try:
        peer = peers(daemon.address)
        peer.hello("alice")
        _run_jobs(peer, 20)
        # No more charges: the deferred save still comes, an interval after the last one.
        deadline = time.monotonic() + 10 * SAVE_INTERVAL_S
        while not (path.is_file() and _saved(path)[0] == 20):
            assert time.monotonic() < deadline, "the last charges were never saved"
            time.sleep(0.05)
        _run_jobs(peer, 20)
        daemon.signal(signal.SIGKILL)  # right after: the last interval's charges may be lost
        daemon.wait(30)
    finally:
        daemon.kill()
    jobs, _ = _saved(path)  # a whole file (written atomically), at most one interval behind
    assert 20 <= jobs <= 40
    restarted = DaemonProcess(tmp_path, ["--max-per-artist", "40"]).start()
    try:
        peer = peers(restarted.address)
        peer.hello("alice")
        _run_jobs(peer, 1)
        restarted.signal(signal.SIGTERM)
        assert restarted.wait(30) == 0
    finally:
        restarted.kill()
    assert _saved(path)[0] == jobs + 1  # the restart went on from what was saved
