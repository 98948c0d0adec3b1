"""Per-artist usage quotas over fixed UTC windows (the current hour and the current day).

Jobs are charged when admitted, GPU-seconds when a batch finishes (the batch's wall time split
by each job's share of candidates). Usage is kept in memory and saved to ``usage.json`` in the
state directory, so a restart does not hand everybody a fresh allowance.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from daemon.config import QuotaLimits
from shared_protocol import QuotaExceeded

WINDOWS = {"hour": 3600, "day": 86400}


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
        clock: Callable[[], float] = time.time,
        on_unsaved: Callable[[str], None] = lambda error: None,
    ) -> None:
        """``on_unsaved`` is told why usage could not be saved (it is still counted)."""
        self._limits_for = limits_for
        self._path = path
        self._clock = clock
        self._on_unsaved = on_unsaved
        self._usage: dict[str, dict[str, _Window]] = {}
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
        self._save()

    def charge_gpu(self, artist: str, seconds: float) -> None:
        for window in WINDOWS:
            self._window(artist, window).gpu_s += seconds
        self._save()

    def _window(self, artist: str, window: str) -> _Window:
        index = math.floor(self._clock() / WINDOWS[window])
        windows = self._usage.setdefault(artist, {})
        current = windows.get(window)
        if current is None or current.index != index:
            current = windows[window] = _Window(index)
        return current

    def _save(self) -> None:
        if self._path is None:
            return
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
