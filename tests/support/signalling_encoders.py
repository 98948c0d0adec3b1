"""The shared text-encoder replica, telling a test when a call has reached it.

``SignallingEncoders`` is ``TextEncoderReplica`` (the real encoders, loaded and run as in
production) with one addition: when an ``encode`` call arrives it appends its process id to
``<signals>/calls`` and holds the call until ``<signals>/release`` exists, then encodes. A test
then knows which process holds the call and faults that process for real (SIGKILL, SIGSTOP)
while the call is inside it, past the point where Serve's router re-sends a call on its own.
``<signals>`` is the folder ``signals`` next to the engine options' ``tiny_dir``.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from daemon.cluster.text_replica import TextEncoderReplica
from daemon.engine.factory import EncoderKey
from daemon.engine.text import TextFeatures

_HOLD_POLL_S = 0.02


def signals_dir(tiny_dir: Path) -> Path:
    return Path(tiny_dir).parent / "signals"


class SignallingEncoders(TextEncoderReplica):
    def __init__(self, engine_options: Mapping[str, Any]) -> None:
        super().__init__(engine_options)
        self._signals = signals_dir(Path(engine_options["tiny_dir"]))

    async def encode(self, key: EncoderKey, prompts: Sequence[str]) -> TextFeatures:
        with (self._signals / "calls").open("a") as calls:  # one short append: atomic
            calls.write(f"{os.getpid()} {time.time():.3f}\n")
        while not (self._signals / "release").exists():
            await asyncio.sleep(_HOLD_POLL_S)
        return await super().encode(key, prompts)


class EncoderSignals:
    """The test's side of ``<signals>``: the calls that arrived, and releasing them."""

    def __init__(self, tiny_dir: Path) -> None:
        self.folder = signals_dir(tiny_dir)

    def reset(self) -> None:
        """Calls hold again, and no call has been seen."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for name in ("calls", "release"):
            (self.folder / name).unlink(missing_ok=True)
        (self.folder / "calls").touch()

    def callers(self) -> list[int]:
        """The pid of each call that arrived, in arrival order."""
        return [int(line.split()[0]) for line in self.arrivals().splitlines()]

    def arrivals(self) -> str:
        """``pid unix-time`` of each call, one a line."""
        return (self.folder / "calls").read_text()

    def release(self) -> None:
        (self.folder / "release").write_text(f"{time.time():.3f}")

    def released(self) -> str:
        """When the calls were released (unix time), or "" if they were not."""
        release = self.folder / "release"
        return release.read_text() if release.exists() else ""
