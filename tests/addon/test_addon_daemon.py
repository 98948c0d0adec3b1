"""Operators against a real daemon on loopback (tests.support's in-process server and engine).

bpy.app.timers never fire in the bpy module, so the UI path is driven by calling the timer
callback (``runtime.tick``) in a loop, exactly as Blender would; the blocking path is the
operator itself, since ``bpy.app.background`` is True here.
"""

from __future__ import annotations

import re
import socket
import time
from typing import Any

import bpy
import numpy as np
import pytest

from blender_addon import prefs, runtime
from blender_addon.core.rig import C
from shared_protocol import Fetch, Generate, Result
from shared_protocol.client import ClientConfig, MotionClient
from tests.addon.conftest import StartDaemon
from tests.addon.test_addon_scene import TOLERANCE_M, bone_heads
from tests.support import FAIL_MARKER, DaemonProcess


@pytest.fixture
def daemon(start_daemon: StartDaemon, monkeypatch: pytest.MonkeyPatch) -> DaemonProcess:
    process = start_daemon("--max-candidates", "8", "--max-per-artist", "1")
    monkeypatch.setenv(prefs.ADDRESS_ENV, process.address)
    return process


def set_panel(scene: Any, prompt: str = "a person walks", **values: Any) -> None:
    settings = scene.hy_motion
    settings.prompt = prompt
    settings.duration_s, settings.candidates, settings.steps = 1.5, 2, 5
    settings.seed_mode, settings.seed = "FIXED", 40
    for key, value in values.items():
        setattr(settings, key, value)


def drive_timer(limit_s: float = 20.0) -> None:
    """Call the timer callback until it unregisters itself (returns None), as Blender would."""
    deadline = time.monotonic() + limit_s
    while runtime.tick() is not None:
        assert time.monotonic() < deadline, "the poll timer never finished"
        time.sleep(0.01)


def received_result(job_id: str) -> Result:
    """The job's result as the daemon sends it, asked again over the add-on's own connection
    (the daemon keeps finished results for ``fetch``)."""
    session = runtime.current()
    assert session is not None
    reply = session.client.call(Fetch(job_id=job_id), timeout_s=10.0)
    assert isinstance(reply, Result)
    return reply


def check_takes_match_result(scene: Any) -> Result:
    """Every frame of every candidate of the last generation: the bone heads in the scene are
    the joint positions the daemon sent (Result.joint_positions), within 1 mm."""
    settings = scene.hy_motion
    result = received_result(settings.takes[-1].job_id)
    takes = [t for t in settings.takes if t.job_id == result.job_id]
    assert sorted(int(t.seed) for t in takes) == list(result.seeds)
    compared = bpy.data.collections["HY-Motion compare"].objects
    assert len(compared) == len(takes)
    for obj in compared:
        take = next(t for t in takes if t.name == obj.name)
        heads = bone_heads(obj, result.skeleton.joint_names, range(1, result.frames + 1))
        expected = result.joint_positions[take.candidate] @ C.T + np.array(obj.location)
        assert np.abs(heads - expected).max() < TOLERANCE_M
    return result


def test_generate_blocking_in_background(scene: Any, daemon: Any) -> None:
    set_panel(scene)
    assert bpy.app.background
    assert bpy.ops.hy_motion.generate() == {"FINISHED"}
    settings = scene.hy_motion
    assert settings.status_state == "done" and "2 take(s) of 45 frames" in settings.status_message
    assert [t.seed for t in settings.takes] == ["40", "41"]
    assert all(t.untrained for t in settings.takes)
    assert "UNTRAINED" in settings.server_line and "daemon" in settings.server_line
    assert check_takes_match_result(scene).frames == 45
    # Random seed: the first seed drawn is shown in the Seed field (docs/addon.md), so Fixed
    # makes the same takes again.
    set_panel(scene, seed_mode="RANDOM", seed=0)
    assert bpy.ops.hy_motion.generate() == {"FINISHED"}
    assert settings.seed_mode == "RANDOM" and settings.seed == int(settings.takes[2].seed)


def test_generate_polled_by_the_timer(scene: Any, daemon: Any) -> None:
    set_panel(scene, candidates=3)
    session = runtime.session_for(
        ClientConfig(address=daemon.address, client_name="hy-motion-blender")
    )
    runtime.start_generation(scene, session, Generate("a person jumps", 1.0, 3, 7, 5.0, 5))
    ticks = 0
    deadline = time.monotonic() + 20
    while runtime.tick() is not None:
        ticks += 1
        assert time.monotonic() < deadline
        time.sleep(0.005)
    assert ticks > 1  # it came back to Blender between polls instead of blocking
    assert scene.hy_motion.status_state == "done"
    assert scene.hy_motion.progress == pytest.approx(1.0)
    assert len(check_takes_match_result(scene).seeds) == 3


@pytest.mark.slow
def test_the_real_tiny_engine_matches_within_1mm(
    scene: Any, start_daemon: StartDaemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same check on the real engine (the built-in tiny model on the CPU, 4 steps)."""
    daemon = start_daemon(real_engine=True)
    monkeypatch.setenv(prefs.ADDRESS_ENV, daemon.address)
    set_panel(scene, duration_s=1.0, steps=4)
    assert bpy.ops.hy_motion.generate() == {"FINISHED"}
    result = check_takes_match_result(scene)
    assert result.model == "tiny" and result.untrained and result.frames == 30


def test_daemon_down_is_reported_within_a_second(
    scene: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
    monkeypatch.setenv(prefs.ADDRESS_ENV, address)
    set_panel(scene)
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="no HY-Motion daemon answered"):
        bpy.ops.hy_motion.generate()
    assert time.monotonic() - started < 1.5
    # Worded as docs/addon.md quotes it.
    assert scene.hy_motion.status_message == f"no HY-Motion daemon answered at {address} within 1 s"
    assert "python -m daemon serve" in scene.hy_motion.status_hint


def test_daemon_refusals_name_the_cause(scene: Any, daemon: Any) -> None:
    set_panel(scene, prompt=f"walk {FAIL_MARKER}")
    with pytest.raises(RuntimeError):
        bpy.ops.hy_motion.generate()
    assert scene.hy_motion.status_state == "failed" and scene.hy_motion.status_message
    # Busy: another client of the same artist holds the only slot.
    other = MotionClient(ClientConfig(address=daemon.address))
    other.connect()
    try:
        other.submit(Generate("a long job", 12.0, 1, 1, 5.0, 200))
        deadline = time.monotonic() + 5
        while not any(e.message.TYPE == "accepted" for e in other.poll(50)):
            assert time.monotonic() < deadline
        set_panel(scene, prompt="a person waves")
        with pytest.raises(RuntimeError, match="busy"):
            bpy.ops.hy_motion.generate()
        assert scene.hy_motion.status_message.startswith("The daemon is busy (")
        assert re.fullmatch(r"Try again in \d+ s\.", scene.hy_motion.status_hint)
    finally:
        other.cancel_all()
        other.poll(100)
        other.close()


def test_bad_values_are_caught_before_sending(scene: Any, daemon: Any) -> None:
    set_panel(scene, prompt="   ")
    with pytest.raises(RuntimeError, match="Type a prompt first"):
        bpy.ops.hy_motion.generate()
    set_panel(scene)
    scene.hy_motion.duration_s = 100.0  # clamped by the property itself
    assert scene.hy_motion.duration_s == pytest.approx(12.0)


def test_cancel_and_file_close_cancel_the_job(scene: Any, daemon: Any) -> None:
    set_panel(scene, steps=200, duration_s=12.0)
    session = runtime.session_for(ClientConfig(address=daemon.address))
    runtime.start_generation(scene, session, Generate("slow", 12.0, 1, 1, 5.0, 200))
    deadline = time.monotonic() + 10
    while scene.hy_motion.status_state != "running":
        runtime.tick()
        assert time.monotonic() < deadline
    assert bpy.ops.hy_motion.cancel() == {"FINISHED"}
    drive_timer()
    assert scene.hy_motion.status_state == "cancelled"
    # Closing the file (load_pre) cancels what is still running and closes the connection.
    session = runtime.session_for(ClientConfig(address=daemon.address))
    runtime.start_generation(scene, session, Generate("slow", 12.0, 1, 2, 5.0, 200))
    while not session.client.outstanding or session.view.state != "running":
        runtime.tick()
        assert time.monotonic() < deadline + 10
    job_id = session.job_id
    bpy.ops.wm.read_factory_settings(use_empty=True)
    assert runtime.current() is None
    deadline = time.monotonic() + 5
    while not [e for e in daemon.log_events() if e.get("event") == "job_cancel_requested"
               and e.get("job_id") == job_id and e.get("reason") == "artist"]:  # fmt: skip
        assert time.monotonic() < deadline, "the daemon never saw the cancellation"
        time.sleep(0.05)
