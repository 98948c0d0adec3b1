"""A clock the test moves by hand, with ``call_later`` timers that fire as it passes them.

For code that takes its clocks and its timer as arguments (``daemon.quotas.QuotaBook``): the
test decides what time it is and when deferred work runs, so nothing depends on real time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class ManualTimer:
    due: float
    callback: Callable[[], None]
    cancelled: bool = False
    fired: bool = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """Call it for the time; ``call_later`` schedules on it; ``advance`` runs what falls due."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now
        self.timers: list[ManualTimer] = []

    def __call__(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[[], None]) -> ManualTimer:
        timer = ManualTimer(self.now + delay, callback)
        self.timers.append(timer)
        return timer

    @property
    def pending(self) -> list[ManualTimer]:
        return [t for t in self.timers if not t.cancelled and not t.fired]

    def advance(self, seconds: float) -> None:
        """Move time on by ``seconds``, running each timer that falls due, in order of due time."""
        end = self.now + seconds
        while True:
            due = sorted((t for t in self.pending if t.due <= end), key=lambda t: t.due)
            if not due:
                break
            timer = due[0]
            self.now = max(self.now, timer.due)
            timer.fired = True
            timer.callback()
        self.now = end
