"""Headless batch: prompts in, .blend + FBX/BVH + a JSON summary out.

    blender -b --python-exit-code 2 --python blender_addon/batch.py -- --prompts FILE --out DIR
    python -m blender_addon.batch --prompts FILE --out DIR          (the bpy module from PyPI)

Per prompt it writes ``DIR/NNN_<prompt>/scene.blend`` (all candidates as takes, the first one
applied) and per candidate ``<prompt>_s<seed>.fbx`` / ``.bvh``; then ``DIR/summary.json``.
Exit code: 0 if every item succeeded, 1 if any failed (all failures are listed), 2 for a
usage error (bad arguments, unreadable prompt file, unusable keys).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if not __package__:  # run as a script: import the package this file belongs to, then run it
    _here = Path(__file__).resolve().parent
    sys.path.insert(0, str(_here.parent))
    sys.exit(importlib.import_module(f"{_here.name}.batch").main())

from .core import naming
from .core.batch_input import BatchItem, load_prompts
from .core.describe import explain
from .core.files import atomic_path
from .core.finishing import cli as finishing_cli
from .core.finishing.options import NO_FINISHING, FinishOptions
from .core.protocol import client, errors, messages
from .core.session import Failed, GenerationSession, JobView, Outcome, server_info
from .core.settings import (
    DEFAULT_ADDRESS,
    DEFAULT_JOB_TIMEOUT_S,
    ConnectionSettings,
    GenerateSettings,
    build_request,
    client_config,
    no_answer,
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
FORMATS = ("blend", "fbx", "bvh")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="batch.py",
        description="Generate motion for every prompt in a file with a HY-Motion daemon and "
        "write .blend / FBX / BVH files plus summary.json. Exit code 0 only if every item "
        "succeeded; 1 if any failed (listed at the end); 2 for bad arguments or input.",
        epilog="Prompt file: one prompt per line ('#' comments), optionally with overrides "
        "after '|', e.g. 'a person waves | duration=3 seed=7 candidates=2'; or a JSON list "
        'of strings or {"prompt": ..., "duration_s": ..., "seed": ...} objects.',
    )
    p.add_argument("--prompts", type=Path, help="prompt file (.txt or .json)")
    p.add_argument("--out", type=Path, required=True, help="output folder (created)")
    p.add_argument("--address", default=DEFAULT_ADDRESS, help="daemon address (%(default)s)")
    p.add_argument("--duration", type=float, default=4.0, help="seconds per clip (%(default)s)")
    p.add_argument("--candidates", type=int, default=2, help="takes per prompt (%(default)s)")
    p.add_argument("--seed", type=int, default=None, help="first seed (default: random)")
    p.add_argument("--guidance", type=float, default=5.0, help="guidance scale (%(default)s)")
    p.add_argument("--steps", type=int, default=50, help="sampler steps (%(default)s)")
    p.add_argument("--model", default=None, help="model name (default: the daemon's default)")
    p.add_argument("--formats", default="blend,fbx,bvh",
                   help="comma list of blend, fbx, bvh (%(default)s)")  # fmt: skip
    p.add_argument(
        "--fps",
        type=float,
        default=30.0,
        help="scene frame rate; motion is resampled (%(default)s)",
    )
    p.add_argument("--server-key", default="", help="daemon's CURVE public key (remote daemons)")
    p.add_argument("--key-file", default="", help="your NAME.key_secret file (remote daemons)")
    p.add_argument("--artist", default="", help="artist name for a loopback daemon's logs")
    p.add_argument("--connect-timeout", type=float, default=5.0, help="seconds (%(default)s)")
    p.add_argument("--timeout", type=float, default=DEFAULT_JOB_TIMEOUT_S,
                   help="seconds per prompt (%(default)s)")  # fmt: skip
    p.add_argument(
        "--retries", type=int, default=5, help="retries when the daemon is busy (%(default)s)"
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing files")
    finishing_cli.add_arguments(p)
    p.add_argument("--bvh", type=Path, action="append", default=[], metavar="FILE",
                   help="instead of --prompts: use this humanoid BVH as a take (repeatable; "
                   "no daemon needed)")  # fmt: skip
    return p


def script_args(argv: Sequence[str]) -> list[str]:
    """Blender passes the script's own arguments after ``--``."""
    argv = list(argv)
    return argv[argv.index("--") + 1 :] if "--" in argv else argv[1:]


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(script_args(sys.argv) if argv is None else list(argv))
    formats = tuple(f.strip().lower() for f in args.formats.split(",") if f.strip())
    if not formats or any(f not in FORMATS for f in formats):
        print(f"error: --formats takes a comma list of {', '.join(FORMATS)}", file=sys.stderr)
        return EXIT_USAGE
    if bool(args.bvh) == bool(args.prompts):
        print("error: give either --prompts or --bvh", file=sys.stderr)
        return EXIT_USAGE
    if args.bvh:
        return _bvh_main(args, formats)
    defaults = GenerateSettings(prompt="", duration_s=args.duration, candidates=args.candidates,
                                guidance=args.guidance, steps=args.steps, seed=args.seed,
                                model=args.model)  # fmt: skip
    connection = ConnectionSettings(address=args.address, server_key=args.server_key,
                                    client_secret_file=args.key_file, artist=args.artist,
                                    connect_timeout_s=args.connect_timeout)  # fmt: skip
    try:
        items = load_prompts(args.prompts, defaults)
        config = client_config(connection, online_access=True)  # the command line is consent
        finish = finishing_cli.options_from_args(args)
    except errors.HYMotionError as exc:
        print(f"error: {explain(exc)}", file=sys.stderr)
        return EXIT_USAGE
    return Batch(args, formats, config, finish).run(items)


def _bvh_main(args: argparse.Namespace, formats: tuple[str, ...]) -> int:
    """``--bvh``: BVH files as finished takes, no daemon (``bvh_batch``)."""
    from . import bvh_batch

    try:
        finish = finishing_cli.options_from_args(args)
    except errors.HYMotionError as exc:
        print(f"error: {explain(exc)}", file=sys.stderr)
        return EXIT_USAGE
    return bvh_batch.run(args, formats, finish)


class Batch:
    def __init__(self, args: argparse.Namespace, formats: tuple[str, ...],
                 config: client.ClientConfig,
                 finish: FinishOptions = NO_FINISHING) -> None:  # fmt: skip
        self.args, self.formats, self.config, self.finish = args, formats, config, finish
        self.records: list[dict[str, Any]] = []
        self.failures: list[dict[str, Any]] = []

    def run(self, items: list[BatchItem]) -> int:
        from . import scene_io  # bpy is imported only once the arguments are known to be good

        started = time.monotonic()
        motion_client = client.MotionClient(self.config)
        session = GenerationSession(motion_client)
        remaining = list(items)
        try:
            with scene_io.batch_scene(self.args.fps):
                try:
                    welcome = motion_client.wait_connected(self.args.connect_timeout)
                except errors.DaemonUnreachable:
                    raise no_answer(self.config) from None  # names the keys over CURVE
                session.server = server_info(welcome)
                print(f"connected: {scene_io.server_line(session.server)}", flush=True)
                while remaining:
                    self._one(session, remaining[0], len(items))
                    remaining.pop(0)
        except errors.DaemonUnreachable as exc:
            for item in remaining:
                self._fail(item, exc)
        finally:
            motion_client.shutdown()
        self._summary(started, session)
        return EXIT_OK if not self.failures else EXIT_FAILED

    def _one(self, session: GenerationSession, item: BatchItem, total: int) -> None:
        from . import scene_io

        label = f"[{item.index}/{total}] {item.settings.prompt[:60]!r}"
        try:
            request = build_request(item.settings, session.limits)
        except errors.HYMotionError as exc:
            self._fail(item, exc)
            return
        outcome = self._generate(session, request, label)
        if isinstance(outcome, Failed):
            if isinstance(outcome.error, errors.DaemonUnreachable):
                raise outcome.error
            self._fail(item, outcome.error)
            return
        folder = self.args.out / f"{item.index:03d}_{naming.slug(request.prompt)}"
        for record in scene_io.write_outputs(outcome.result, session.server, request, folder,
                                             self.formats, self.args.overwrite,
                                             self.finish):  # fmt: skip
            record.update(prompt_index=item.index, where=item.where)
            self.records.append(record)
            if record["error"]:
                self.failures.append(record)
            print(f"{label} seed {record['seed']}: {record['error'] or 'ok'}", flush=True)

    def _generate(
        self, session: GenerationSession, request: messages.Generate, label: str
    ) -> Outcome:
        def show(view: JobView) -> None:
            eta = f", ETA {view.eta_s:.0f} s" if view.eta_s else ""
            print(f"{label} {view.message} ({view.fraction:.0%}{eta})", flush=True)

        retries = 0
        while True:
            outcome = session.run_blocking(request, self.args.timeout, show)
            if not isinstance(outcome, Failed) or not isinstance(outcome.error, errors.Busy):
                return outcome
            if retries >= self.args.retries:
                return outcome
            retries += 1
            wait = float(outcome.error.details.get("retry_after_s", 1.0))
            print(f"{label} daemon busy; retrying in {wait:.1f} s", flush=True)
            time.sleep(wait)

    def _fail(self, item: BatchItem, exc: errors.HYMotionError) -> None:
        info = explain(exc)
        record = {"prompt_index": item.index, "where": item.where, "prompt": item.settings.prompt,
                  "seed": None, "files": [], "error": str(info), "code": exc.code}  # fmt: skip
        self.records.append(record)
        self.failures.append(record)
        print(f"[{item.index}] FAILED {item.where}: {info}", flush=True)

    def _summary(self, started: float, session: GenerationSession) -> None:
        summary: dict[str, Any] = {
            "ok": not self.failures,
            "seconds": round(time.monotonic() - started, 3),
            "daemon": dataclasses.asdict(session.server),
            "finishing": self.finish.as_dict(),
            "items": self.records,
            "failures": [f"{f['where']} seed {f['seed']}: {f['error']}" for f in self.failures],
        }
        path = self.args.out / "summary.json"
        try:
            with atomic_path(path, overwrite=True) as temp:
                temp.write_text(json.dumps(summary, indent=2))
        except errors.HYMotionError as exc:
            print(f"error: could not write {path}: {explain(exc)}", file=sys.stderr)
        done = sum(1 for r in self.records if not r["error"])
        print(f"done: {done} item(s) succeeded, {len(self.failures)} failed; summary: {path}")
        for line in summary["failures"]:
            print(f"FAILED {line}")


if __name__ == "__main__":
    sys.exit(main())
