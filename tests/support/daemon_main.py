"""``python -m tests.support.daemon_main``: the real daemon (``serve`` flags, env, config file)
driving :class:`tests.support.engine.TestEngine`, for tests that kill or signal a process.

Extra flags: ``--step-s`` (seconds per sampler step), ``--max-batch-candidates``,
``--drop-capability NAME`` (repeatable: a welcome without NAME, as an older daemon sends it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from daemon import service
from daemon.cli import run_server
from daemon.config import OPTIONS, ConfigError, flag_name, load_config

from .engine import TestEngine


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.daemon_main")
    parser.add_argument("--config", type=Path)
    for option in OPTIONS:
        parser.add_argument(flag_name(option.name), dest=option.name)
    parser.add_argument("--step-s", type=float, default=0.0)
    parser.add_argument("--max-batch-candidates", type=int, default=8)
    parser.add_argument("--drop-capability", action="append", default=[], metavar="NAME")
    args = parser.parse_args(argv)
    # The welcome reads the module's tuple when it is sent: an older daemon's, minus these.
    service.CAPABILITIES = tuple(c for c in service.CAPABILITIES if c not in args.drop_capability)
    flags = {option.name: getattr(args, option.name) for option in OPTIONS}
    try:
        config = load_config(args.config, os.environ, flags)
    except ConfigError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    engines = [
        TestEngine(step_s=args.step_s, max_batch_candidates=args.max_batch_candidates, device=d)
        for d in config.devices
    ]
    return asyncio.run(run_server(config, engines))


if __name__ == "__main__":
    sys.exit(main())
