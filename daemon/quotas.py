"""Per-artist usage quotas over fixed UTC windows (the current hour and the current day).

Jobs are charged when admitted, GPU-seconds when a batch finishes (the batch's wall time split
by each job's share of candidates). Usage is kept in memory and saved to ``usage.json`` in the
state directory, so a restart does not hand everybody a fresh allowance. Saving is write-behind:
a charge is saved at once if nothing was saved for ``SAVE_INTERVAL_S``, otherwise with every
other charge of that interval when it ends, and :meth:`QuotaBook.save` writes whatever is left
when the daemon stops.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from daemon.config import QuotaLimits
from shared_protocol import QuotaExceeded

WINDOWS = {"hour": 3600, "day": 86400}
#: At most one write of ``usage.json`` per this many seconds: a busy daemon admits and finishes
#: many jobs a second on its one event-loop thread, and a write per charge (two per job) was half
#: of that thread's CPU (docs/benchmarks.md). A crash loses at most this interval's charges.
SAVE_INTERVAL_S = 1.0


class Timer(Protocol):
    def cancel(self) -> None: ...


#: Calls a function after a delay in seconds (``loop.call_later`` on the daemon's loop).
CallLater = Callable[[float, Callable[[], None]], Timer]


@dataclass
class _Window:
    index: int
    jobs: int = 0
    gpu_s: float = 0.0


class QuotaBook:
    def __init__(
        self,
        limits_for: Callable[[str], QuotaLimits],
        path: Path | None,
        call_later: CallLater,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        on_unsaved: Callable[[str], None] = lambda error: None,
    ) -> None:
        """``call_later`` runs the deferred saves; ``clock`` places charges in their UTC
        windows, ``monotonic`` spaces the saves; ``on_unsaved`` is told why usage could not be
        saved (it is still counted, and the next save tries again)."""
        self._limits_for = limits_for
        self._path = path
        self._call_later = call_later
        self._clock = clock
        self._monotonic = monotonic
        self._on_unsaved = on_unsaved
        self._usage: dict[str, dict[str, _Window]] = {}
        #: Charged in memory since the last successful save.
        self._unsaved = False
        self._last_save_mono = -math.inf
        self._save_timer: Timer | None = None
        #: Why the saved usage could not be read (the daemon logs it), or None.
        self.load_error: str | None = None
        if path is not None and path.is_file():
            self._load(path)

    def check(self, artist: str) -> None:
        """Raise QuotaExceeded (with the reset time) if any allowance is used up."""
        limits = self._limits_for(artist)
        for window, seconds in WINDOWS.items():
            used = self._window(artist, window)
            for limit, amount, unit in (
                (f"jobs_per_{window}", used.jobs, "jobs"),
                (f"gpu_seconds_per_{window}", used.gpu_s, "GPU-seconds"),
            ):
                allowance = getattr(limits, limit)
                if allowance is not None and amount >= allowance:
                    raise QuotaExceeded(
                        f"{artist} used {amount:g} of {allowance:g} {unit} this {window}",
                        resets_at=float((used.index + 1) * seconds),
                        limit=limit,
                    )

    def charge_job(self, artist: str) -> None:
        for window in WINDOWS:
            self._window(artist, window).jobs += 1
        self._charged()

    def charge_gpu(self, artist: str, seconds: float) -> None:
        for window in WINDOWS:
            self._window(artist, window).gpu_s += seconds
        self._charged()

    def save(self) -> None:
        """Write every unsaved charge now (the daemon's stop; a deferred save that falls due)."""
        if self._save_timer is not None:
            self._save_timer.cancel()
            self._save_timer = None
        if not self._unsaved or self._path is None:
            return
        self._last_save_mono = self._monotonic()
        data = {
            artist: {w: [u.index, u.jobs, u.gpu_s] for w, u in windows.items()}
            for artist, windows in self._usage.items()
        }
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data), encoding="utf-8")
            os.replace(tmp, self._path)  # atomic: a crash never leaves half a file
        except OSError as exc:
            # The disk's fault, not the job's: the job goes ahead, counted in memory.
            self._on_unsaved(f"{self._path}: {exc}")
            return
        self._unsaved = False

    def _charged(self) -> None:
        """Save now if the last save is an interval old, else once the interval is over."""
        self._unsaved = True
        if self._save_timer is not None:  # a save is already due: it takes this charge too
            return
        wait = self._last_save_mono + SAVE_INTERVAL_S - self._monotonic()
        if wait <= 0:
            self.save()
        else:
            self._save_timer = self._call_later(wait, self.save)

    def _window(self, artist: str, window: str) -> _Window:
        index = math.floor(self._clock() / WINDOWS[window])
        windows = self._usage.setdefault(artist, {})
        current = windows.get(window)
        if current is None or current.index != index:
            current = windows[window] = _Window(index)
        return current

    def _load(self, path: Path) -> None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            self._usage = {
                str(artist): {
                    w: _Window(int(v[0]), int(v[1]), float(v[2]))
                    for w, v in windows.items()
                    if w in WINDOWS
                }
                for artist, windows in data.items()
            }
        except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
            # A damaged usage file must not stop the daemon; usage restarts from zero.
            self._usage = {}
            self.load_error = f"{path}: {exc}"
