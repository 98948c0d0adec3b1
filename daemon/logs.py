"""Structured JSON logs: one object per line, one line per event.

Each record carries ``ts``, ``level`` and ``event`` plus whatever fields the event has
(job_id, artist, request_id, stage, durations). Messages are never free text to parse.
"""

from __future__ import annotations

import json
import logging
import secrets
import sys
import time
from pathlib import Path
from typing import Any

LOGGER_NAME = "hymotion.daemon"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "event": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class EventLog:
    """Thin wrapper so call sites read ``log.info("job_finished", job_id=..., artist=...)``."""

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger

    def _emit(self, level: int, event: str, exc: bool, fields: dict[str, Any]) -> None:
        if self._logger.isEnabledFor(level):
            clean = {k: v for k, v in fields.items() if v is not None}
            self._logger.log(level, event, exc_info=exc, extra={"fields": clean})

    def debug(self, event: str, **fields: Any) -> None:
        self._emit(logging.DEBUG, event, False, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._emit(logging.INFO, event, False, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._emit(logging.WARNING, event, False, fields)

    def error(self, event: str, exc: bool = False, **fields: Any) -> None:
        self._emit(logging.ERROR, event, exc, fields)


def setup_logging(
    level: str, to_stderr: bool, log_dir: Path | None, name: str = LOGGER_NAME
) -> tuple[EventLog, list[logging.Handler]]:
    """Configure a non-propagating JSON logger; returns it and its handlers (to close later)."""
    logger = logging.getLogger(name)
    logger.setLevel(level.upper())
    logger.propagate = False
    handlers: list[logging.Handler] = []
    if to_stderr:
        handlers.append(logging.StreamHandler(sys.stderr))
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_dir / "daemon.log", encoding="utf-8"))
    formatter = JsonFormatter()
    for handler in handlers:
        handler.setFormatter(formatter)
        logger.addHandler(handler)
    return EventLog(logger), handlers


def close_handlers(name: str, handlers: list[logging.Handler]) -> None:
    logger = logging.getLogger(name)
    for handler in handlers:
        logger.removeHandler(handler)
        handler.close()


def elapsed(since: float) -> float:
    """Seconds since a ``time.monotonic()`` stamp, rounded for logs."""
    return round(time.monotonic() - since, 4)


def new_log_id() -> str:
    """A short id that joins an error reply to its log line (and traceback)."""
    return secrets.token_hex(6)
