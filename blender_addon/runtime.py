"""The process-wide connection: one client and session, the UI poll timer, and shutdown.

The timer calls ``GenerationSession.tick(0)`` (a non-blocking ``poll(0)``) every 0.1 s while
something is outstanding, applies a finished result on Blender's main thread, and stops itself
when idle. ``bpy.app.background`` never runs timers, so operators block there instead.
"""

from __future__ import annotations

import atexit
import time
from collections.abc import Sequence

import bpy

from . import history, step_runner
from .core.protocol import client, errors, messages
from .core.session import (
    Failed,
    Finished,
    GenerationSession,
    JobView,
    ServerInfo,
    failed_view,
)
from .core.settings import no_answer
from .props import HYMOTION_PG_take, scene_settings
from .targets import RIG_TARGET

TICK_S = 0.1
SHUTDOWN_WAIT_S = 0.3


class _State:
    session: GenerationSession | None = None
    config: client.ClientConfig | None = None
    scene_name: str = ""
    #: monotonic time a connection check started; 0 when none is running.
    checking_since: float = 0.0


_state = _State()


def session_for(config: client.ClientConfig) -> GenerationSession:
    """The session for ``config``; a changed address or key replaces the connection."""
    if _state.session is not None and _state.config == config:
        return _state.session
    shutdown()
    motion_client = client.MotionClient(config)
    motion_client.connect()
    _state.session, _state.config = GenerationSession(motion_client), config
    return _state.session


def current() -> GenerationSession | None:
    return _state.session


def start_generation(
    scene: bpy.types.Scene, session: GenerationSession, request: messages.Generate
) -> str:
    """Submit ``request`` and let the timer poll; returns the request id (the daemon's log and
    every event about the job carry it)."""
    request_id = session.start(request)
    _state.scene_name = scene.name
    _ensure_timer()
    return request_id


def check_connection(scene: bpy.types.Scene, session: GenerationSession) -> None:
    session.refresh_status()
    _state.scene_name = scene.name
    _state.checking_since = time.monotonic()
    _ensure_timer()


def _ensure_timer() -> None:
    # Persistent: loading a file shuts the session down (_on_load_pre) and the next tick then
    # ends the timer. A non-persistent timer is dropped by the load instead, which leaves the
    # bpy 4.5 module hanging at interpreter exit.
    if not bpy.app.timers.is_registered(tick):
        bpy.app.timers.register(tick, first_interval=0.0, persistent=True)


def tick() -> float | None:
    """The timer callback (also called directly by tests: timers never fire headless)."""
    session = _state.session
    scene = bpy.data.scenes.get(_state.scene_name)
    if session is None or scene is None:
        return None
    try:
        outcomes = session.tick(0)
    except errors.HYMotionError as exc:
        outcomes = []
        session.view, session.changed = failed_view(exc), True
    for outcome in outcomes:
        handle_outcome(scene, session, outcome)
    _check_timeout(session)
    if session.changed:
        write_status(scene, session.view, session.server)
        session.changed = False
        _redraw()
    if session.view.busy or _state.checking_since:
        return TICK_S
    return None


def handle_outcome(
    scene: bpy.types.Scene, session: GenerationSession, outcome: Finished | Failed
) -> None:
    """A finished result becomes takes, the first applied (side by side if asked); a failure
    is already in ``session.view``."""
    if isinstance(outcome, Finished):
        try:
            takes = history.add_result(scene, outcome.result, session.server, session.request)
            history.apply_take(scene, takes[0])
            settings = scene_settings(scene)
            settings.active_take = len(settings.takes) - len(takes)
            if settings.side_by_side and len(takes) > 1:
                compare_new_takes(scene, takes)
        except errors.HYMotionError as exc:
            session.view, session.changed = failed_view(exc), True


def compare_new_takes(scene: bpy.types.Scene, takes: Sequence[HYMOTION_PG_take]) -> None:
    """*Side by side* for new candidates (the active take's Generate). On the character, with
    a window, Compare's job is queued so that Blender waits for one take's retarget at a time
    (Esc stops it); else (the built-in armature, or headless) the comparison is made at once."""
    if scene_settings(scene).target == RIG_TARGET and step_runner.has_window():
        step_runner.invoke_soon("hy_motion.compare_takes", scene, scope="JOB")
    else:
        history.compare_takes(scene, takes)


def _check_timeout(session: GenerationSession) -> None:
    if not _state.checking_since:
        return
    waited = time.monotonic() - _state.checking_since
    if session.client.connected and session.server.queue_depth is not None:
        _state.checking_since = 0.0
    elif _state.config is not None and waited > _state.config.connect_timeout_s:
        _state.checking_since = 0.0
        if not session.client.connected:
            session.view, session.changed = failed_view(no_answer(_state.config)), True


def show_error(scene: bpy.types.Scene, exc: errors.HYMotionError) -> None:
    session = _state.session
    write_status(scene, failed_view(exc), session.server if session else ServerInfo())


def write_status(scene: bpy.types.Scene, view: JobView, server: ServerInfo) -> None:
    settings = scene_settings(scene)
    settings.status_state = view.state
    eta = f", about {view.eta_s:.0f} s left" if view.eta_s else ""
    settings.status_message = view.message + (eta if view.busy else "")
    settings.status_hint = view.hint
    settings.progress = view.fraction
    settings.server_line = server_line(server)


def server_line(server: ServerInfo) -> str:
    if not server.version:
        return "Not connected"
    parts = [f"daemon {server.version}", server.model_label or server.model]
    if server.device:
        parts.append(server.device)
    if server.queue_depth is not None:
        parts.append(f"queue {server.queue_depth}")
    line = " · ".join(parts)
    return f"{line} · UNTRAINED" if server.untrained else line


def _redraw() -> None:
    wm = bpy.context.window_manager
    for window in wm.windows if wm else ():
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                area.tag_redraw()


def shutdown() -> None:
    """Cancel this client's jobs (waiting briefly for the daemon's answer) and close."""
    session, _state.session, _state.config = _state.session, None, None
    _state.checking_since = 0.0
    if session is None:
        return
    session.client.shutdown(SHUTDOWN_WAIT_S)


@bpy.app.handlers.persistent
def _on_load_pre(*_args: object) -> None:
    shutdown()


def register() -> None:
    bpy.app.handlers.load_pre.append(_on_load_pre)
    atexit.register(shutdown)


def unregister() -> None:
    atexit.unregister(shutdown)
    if _on_load_pre in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.remove(_on_load_pre)
    if bpy.app.timers.is_registered(tick):
        bpy.app.timers.unregister(tick)
    shutdown()
