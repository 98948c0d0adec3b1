"""End a test process with pytest's own status, skipping the interpreter's clean-up.

Some native libraries crash or hang at interpreter exit after every test has run and been
reported (the bpy 4.2/4.5 modules; Ray's driver threads once the process has joined a
cluster), which would turn a green run red. Where one of them is loaded, the process ends with
pytest's status right after pytest finishes.
"""

from __future__ import annotations

import atexit
import os
import sys


def end_with_status_at_exit(status: int) -> None:
    atexit.register(_exit_now, int(status))


def _exit_now(status: int) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
