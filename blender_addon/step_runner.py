"""Operators whose work is a :class:`~.core.steps.StepJob`: one step per timer tick, progress
in the status bar, Esc to stop between steps; headless (batch, tests, no window), every step at
once through the same job (bpy side).

Code that cannot start a modal operator itself (a property's update callback runs while
Blender handles a button) queues it with :func:`invoke_soon`: a timer invokes it in a window
once no other job runs.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import bpy

from .core.describe import explain
from .core.steps import StepJob

if TYPE_CHECKING:
    from .operators import Status

#: Seconds between steps: short, Blender redraws and reads Esc in between.
TICK_S = 0.01


class StepsOperator(bpy.types.Operator):
    """Base of the operators that run a StepJob (Esc stops it after the step running)."""

    _job: StepJob | None = None
    _timer: bpy.types.Timer | None = None
    #: Jobs running modally now, in any StepsOperator (queued ones wait for none).
    running = 0

    def run_steps(self, context: bpy.types.Context, job: StepJob) -> Status:
        wm = context.window_manager
        if bpy.app.background or wm is None or context.window is None:
            while job.step():
                pass
            return self._outcome(job)
        self._job = job
        StepsOperator.running += 1
        self._timer = wm.event_timer_add(TICK_S, window=context.window)
        wm.modal_handler_add(self)
        wm.progress_begin(0, job.total)
        _status(context, job.progress())
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> Status:
        job = self._job
        assert job is not None  # set by run_steps before the handler
        try:
            if event.type == "ESC":
                job.cancel()
            elif event.type == "TIMER":
                job.step()
        except BaseException:  # a bug, not a refusal: leave no timer or progress bar behind
            self._stop(context)
            raise
        if not job.over:
            if context.window_manager is not None:
                context.window_manager.progress_update(job.done)
            _status(context, job.progress())
            # Other input is ignored until the job ends: the takes must not change under it.
            return {"RUNNING_MODAL"}
        self._stop(context)
        return self._outcome(job)

    def _stop(self, context: bpy.types.Context) -> None:
        wm = context.window_manager
        if wm is not None:
            if self._timer is not None:
                wm.event_timer_remove(self._timer)
            wm.progress_end()
        _status(context, None)
        self._timer = None
        StepsOperator.running -= 1

    def _outcome(self, job: StepJob) -> Status:
        """Report how the job ended. An undo step is pushed (FINISHED) whenever a step changed
        something, so one Ctrl+Z takes back all of it, even when the job stopped early."""
        if job.error is not None:
            self.report({"ERROR"}, str(explain(job.error)))
        if job.finished:
            self.report({"INFO"}, job.outcome())
            return {"FINISHED"}
        self.report({"WARNING"}, job.outcome())
        return {"FINISHED"} if job.done else {"CANCELLED"}


def _status(context: bpy.types.Context, text: str | None) -> None:
    if context.workspace is not None:
        context.workspace.status_text_set(text)


#: Operators waiting for :func:`_start_queued`: (operator id, scene name, properties).
_queued: list[tuple[str, str, dict[str, Any]]] = []


def has_window() -> bool:
    """Whether a StepsOperator can run modally here (a window exists; timers tick)."""
    wm = bpy.context.window_manager
    return not bpy.app.background and wm is not None and len(wm.windows) > 0


def invoke_soon(idname: str, scene: bpy.types.Scene, **properties: Any) -> None:
    """Invoke StepsOperator ``idname`` (``"hy_motion.finish_take"``) with ``properties`` from a
    timer, in a window showing ``scene``, after any job running now. The same request queued
    twice before it starts runs once."""
    request = (idname, scene.name, properties)
    if request not in _queued:
        _queued.append(request)
    if not bpy.app.timers.is_registered(_start_queued):
        bpy.app.timers.register(_start_queued, first_interval=0.0)


def _start_queued() -> float | None:
    """Timer callback: start the next queued operator; ask to be called again while more wait."""
    if StepsOperator.running:  # one job at a time
        return TICK_S
    wm = bpy.context.window_manager
    windows = list(wm.windows) if wm is not None else []
    if not _queued or not windows:
        _queued.clear()
        return None
    idname, scene_name, properties = _queued.pop(0)
    window = next((w for w in windows if w.scene.name == scene_name), None)
    if window is not None:  # else the scene was closed meanwhile: nothing to do
        category, name = idname.split(".")
        operator = getattr(getattr(bpy.ops, category), name)
        # An operator that refuses (its poll, or an error it reports) raises here; it told the
        # artist why in its report, and the queue goes on. fake-bpy-module-5.2 types
        # temp_override()'s result without __enter__/__exit__.
        with (
            bpy.context.temp_override(window=window),  # type: ignore[attr-defined,unused-ignore]
            contextlib.suppress(RuntimeError),
        ):
            operator("INVOKE_DEFAULT", **properties)
    return TICK_S if _queued else None
