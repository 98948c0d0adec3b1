"""Operators whose work is a :class:`~.core.steps.StepJob`: one step per timer tick, progress
in the status bar, Esc to stop between steps; headless (batch, tests, no window), every step at
once through the same job (bpy side)."""

from __future__ import annotations

from typing import TYPE_CHECKING

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

    def run_steps(self, context: bpy.types.Context, job: StepJob) -> Status:
        wm = context.window_manager
        if bpy.app.background or wm is None or context.window is None:
            while job.step():
                pass
            return self._outcome(job)
        self._job = job
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
