"""Work the panel does in small steps, one per UI tick, so Blender never waits for all of it
(no bpy).

A :class:`StepJob` is a list of steps, each complete on its own (one take's Action on the
artist's rig: all of it written or none). The UI runs one step per timer tick and can cancel
between steps; a headless run (batch, tests) runs the same steps to the end at once. When a
step fails with an expected error (``HYMotionError``: a take that lost its action, a mapping
the rig no longer has), the job stops there: the steps before it stay done, the failing one
left nothing, the ones after it never ran. Any other exception is a bug and propagates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import HYMotionError


@dataclass(frozen=True)
class Step:
    label: str  # what the step does, for progress and errors ("take 'walk #1'")
    run: Callable[[], Any]


class StepJob:
    def __init__(self, title: str, steps: Sequence[Step], done_text: str = "") -> None:
        self.title = title
        self.steps = tuple(steps)
        self.done_text = done_text  # the outcome of a finished job, if not the generic one
        self.done = 0  # steps finished
        self.cancelled = False
        self.failed: Step | None = None
        self.error: HYMotionError | None = None  # why ``failed`` failed
        self.results: list[Any] = []  # what each finished step returned, in order

    @property
    def total(self) -> int:
        return len(self.steps)

    @property
    def result(self) -> Any:
        """What the last finished step returned (None before the first)."""
        return self.results[-1] if self.results else None

    @property
    def finished(self) -> bool:
        return self.done == self.total

    @property
    def over(self) -> bool:
        """Nothing more will run: finished, cancelled or failed."""
        return self.finished or self.cancelled or self.failed is not None

    def step(self) -> bool:
        """Run the next step; True while steps remain. An expected error stops the job (kept in
        ``error``; the steps already done stay done)."""
        if self.over:
            return False
        current = self.steps[self.done]
        try:
            result = current.run()
        except HYMotionError as exc:
            self.failed, self.error = current, exc
            return False
        self.results.append(result)
        self.done += 1
        return not self.finished

    def cancel(self) -> None:
        """Stop before the next step (the one running, if any, completes)."""
        if not self.finished:
            self.cancelled = True

    def run_to_end(self) -> Any:
        """Every remaining step now (headless); returns the last step's result, or raises the
        error that stopped the job."""
        while self.step():
            pass
        if self.error is not None:
            raise self.error
        return self.result

    def progress(self) -> str:
        """One line for the status bar: what runs next, and how far the job is."""
        if self.finished:
            return f"{self.title}: done"
        return f"{self.title}: {self.steps[self.done].label} ({self.done + 1} of {self.total})"

    def outcome(self) -> str:
        """What the job left, in plain words (after it is over)."""
        if self.finished:
            return self.done_text or f"{self.title}: done ({self.total} steps)"
        done = ", ".join(s.label for s in self.steps[: self.done]) or "nothing"
        skipped = ", ".join(s.label for s in self.steps[self.done + (self.failed is not None) :])
        how = f"{self.failed.label} failed" if self.failed is not None else "cancelled"
        return f"{self.title}: {how}; done and kept: {done}; not done: {skipped or 'nothing'}"
