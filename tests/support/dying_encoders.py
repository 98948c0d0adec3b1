"""A stand-in for the shared text-encoder deployment whose replica process dies mid-call.

``encode`` reads how many deaths are left from a file (shared by every replica Serve starts):
while some are, it counts one down and ends its own process before answering, as a replica
whose node is lost does. Then it answers with the prompts it was given.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path


class DyingEncoders:
    def __init__(self, deaths_file: str) -> None:
        self._deaths = Path(deaths_file)

    async def encode(self, key: object, prompts: Sequence[str]) -> list[str]:
        left = int(self._deaths.read_text())
        if left > 0:
            self._deaths.write_text(str(left - 1))
            os._exit(1)
        return list(prompts)
