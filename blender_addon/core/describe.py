"""Errors in plain words, with what to do about them (no bpy)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from .protocol import errors


@dataclass(frozen=True)
class Explanation:
    message: str
    hint: str

    def __str__(self) -> str:
        return f"{self.message} — {self.hint}" if self.hint else self.message


def explain(exc: errors.HYMotionError) -> Explanation:
    """One line for the status area and one for what to do."""
    details = exc.details
    if isinstance(exc, errors.Busy):
        wait = float(details.get("retry_after_s", 0.0))
        reason = str(details.get("reason", "queue_full")).replace("_", " ")
        return Explanation(
            f"The daemon is busy ({reason}).", f"Try again in {max(wait, 1.0):.0f} s."
        )
    if isinstance(exc, errors.QuotaExceeded):
        resets = details.get("resets_at")
        when = time.strftime("%H:%M", time.localtime(float(resets))) if resets else "later"
        return Explanation(exc.message, f"Your quota resets at {when}. {exc.hint}".strip())
    if isinstance(exc, errors.InvalidArgument):
        field = details.get("field", "a value")
        allowed = details.get("allowed")
        hint = f"Allowed: {allowed}." if allowed else "Change it and try again."
        return Explanation(f"{field}: {exc.message}", hint)
    if isinstance(exc, errors.InternalError) and details.get("log_id"):
        return Explanation(exc.message, f"{exc.hint} (log id {details['log_id']})")
    return Explanation(exc.message, exc.hint)
