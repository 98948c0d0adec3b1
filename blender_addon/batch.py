"""Headless batch: prompts in, .blend + FBX/BVH + a JSON summary out.

    blender -b --python-exit-code 2 --python blender_addon/batch.py -- --prompts FILE --out DIR
    python -m blender_addon.batch --prompts FILE --out DIR          (the bpy module from PyPI)
    blender -b --python-exit-code 2 --python <installed extension>/batch.py -- --prompts FILE ...
    python <installed extension>/batch.py -- --prompts FILE ...     (the bpy module from PyPI)

Per prompt it writes ``DIR/NNN_<prompt>/NNN_<prompt>.blend`` (all candidates as takes, the
first one applied) and per candidate ``<prompt>_s<seed>.fbx`` / ``.bvh``; then
``DIR/summary.json``. Every path is decided, and checked, before the first request: an existing
one stops the batch with exit code 2 unless ``--overwrite``. Exit code: 0 if every item
succeeded, 1 if any failed (all failures are listed), 2 for a usage error (bad arguments,
unreadable prompt file, unusable keys, outputs that exist).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

if not __package__:
    # Run as a file (blender --python, or python): import the package it belongs to and run it.
    # In the source tree that is its folder, as a top-level package. In an installed extension
    # (<extensions>/<repo>/<id>/batch.py) it is the extension's module bl_ext.<repo>.<id>,
    # enabled first if it is not (Blender then installs its wheels, pyzmq, and puts them on
    # sys.path) and disabled again at the end.
    _here = Path(__file__).resolve().parent
    if _here.parent.parent.name != "extensions":
        sys.path.insert(0, str(_here.parent))
        _batch = importlib.import_module(f"{_here.name}.batch")
        _batch.exit_with(_batch.main())
    import bpy

    addon_utils = importlib.import_module("addon_utils")  # Blender's, found once bpy is imported

    _module = f"bl_ext.{_here.parent.name}.{_here.name}"
    _preferences = bpy.context.preferences
    _enable_here = _preferences is None or _module not in _preferences.addons
    if _enable_here:
        addon_utils.extensions_refresh(ensure_wheels=True, addon_modules_pending=[_module])
        if addon_utils.enable(_module, default_set=True, handle_error=print) is None:
            print(f"error: the installed extension {_module} could not be enabled")
            sys.exit(2)
    _batch = importlib.import_module(f"{_module}.batch")
    try:
        _code = _batch.main()
    finally:
        if _enable_here:
            addon_utils.disable(_module, default_set=True)
    _batch.exit_with(_code)

from .core import directing_cli
from .core.batch_input import load_prompts
from .core.batch_plan import (
    PlannedItem,
    describe_seeds,
    existing_outputs,
    plan,
    summary_path,
)
from .core.describe import explain
from .core.files import atomic_path
from .core.finishing import cli as finishing_cli
from .core.finishing.options import NO_FINISHING, FinishOptions
from .core.protocol import client, errors, messages
from .core.rig_cli import CHARACTER_ERRORS, RigTarget, target_from_args
from .core.rig_cli import add_arguments as add_character_arguments
from .core.rig_pose import Placement
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
    directing_cli.add_arguments(p)
    add_character_arguments(p)
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
    out_of_range = _out_of_range(args)
    if out_of_range:
        print(f"error: {out_of_range}", file=sys.stderr)
        return EXIT_USAGE
    if args.root_bone and args.target_rig:  # the rig's own root bone is a character option
        print("error: --root-bone puts the travel on the built-in armature's root bone; with "
              "--target-rig use --root-motion root_bone", file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    if bool(args.bvh) == bool(args.prompts):
        print("error: give either --prompts or --bvh", file=sys.stderr)
        return EXIT_USAGE
    if args.bvh:
        if directing_cli.any_given(args):
            print("error: the direction flags need prompts and a daemon; they do not apply to "
                  "--bvh takes", file=sys.stderr)  # fmt: skip
            return EXIT_USAGE
        return _bvh_main(args, formats)
    defaults = GenerateSettings(prompt="", duration_s=args.duration, candidates=args.candidates,
                                guidance=args.guidance, steps=args.steps, seed=args.seed,
                                model=args.model)  # fmt: skip
    connection = ConnectionSettings(address=args.address, server_key=args.server_key,
                                    client_secret_file=args.key_file, artist=args.artist,
                                    connect_timeout_s=args.connect_timeout)  # fmt: skip
    try:
        direct = directing_cli.direct_from_args(args)
        planned = plan(load_prompts(args.prompts, defaults, direct), args.out, formats)
        config = client_config(connection, online_access=True)  # the command line is consent
        finish = finishing_cli.options_from_args(args)
        character = target_from_args(args)
    except errors.HYMotionError as exc:
        print(f"error: {explain(exc)}", file=sys.stderr)
        return EXIT_USAGE
    existing = [] if args.overwrite else existing_outputs(planned, args.out)
    if existing:
        return refuse_existing(existing)
    return Batch(args, formats, config, finish, character).run(planned)


def _out_of_range(args: argparse.Namespace) -> str | None:
    """The first rate, time or count flag outside what it can mean (None: all are fine)."""
    for flag, value, what in (
        ("--fps", args.fps, "frames per second above 0"),
        ("--timeout", args.timeout, "seconds above 0"),
        ("--connect-timeout", args.connect_timeout, "seconds above 0"),
    ):
        if not (math.isfinite(value) and value > 0):
            return f"{flag} takes {what}; got {value:g}"
    if args.retries < 0:
        return f"--retries takes a count of 0 or more; got {args.retries}"
    return None


def refuse_existing(existing: Sequence[Path]) -> int:
    """Nothing is generated or written when an output exists (without --overwrite)."""
    shown = "".join(f"\n  {path}" for path in existing[:10])
    more = f"\n  ... and {len(existing) - 10} more" if len(existing) > 10 else ""
    print(f"error: {len(existing)} output file(s) already exist, so nothing was generated:"
          f"{shown}{more}\nPass --overwrite to replace them, or choose another --out folder.",
          file=sys.stderr)  # fmt: skip
    return EXIT_USAGE


def _bvh_main(args: argparse.Namespace, formats: tuple[str, ...]) -> int:
    """``--bvh``: BVH files as finished takes, no daemon (``bvh_batch``)."""
    from . import bvh_batch

    try:
        finish = finishing_cli.options_from_args(args)
        character = target_from_args(args)
    except errors.HYMotionError as exc:
        print(f"error: {explain(exc)}", file=sys.stderr)
        return EXIT_USAGE
    summary = summary_path(args.out)
    if summary.exists() and not args.overwrite:
        return refuse_existing([summary])
    return bvh_batch.run(args, formats, finish, character)


class Batch:
    def __init__(self, args: argparse.Namespace, formats: tuple[str, ...],
                 config: client.ClientConfig, finish: FinishOptions = NO_FINISHING,
                 character: RigTarget | None = None) -> None:  # fmt: skip
        self.args, self.formats, self.config, self.finish = args, formats, config, finish
        self.character = character
        self.placement: Placement | None = None  # the character's, for direct paths
        self.records: list[dict[str, Any]] = []
        self.failures: list[dict[str, Any]] = []

    def run(self, items: list[PlannedItem]) -> int:
        from . import scene_io  # bpy is imported only once the arguments are known to be good

        started = time.monotonic()
        motion_client = client.MotionClient(self.config)
        session = GenerationSession(motion_client)
        remaining = list(items)
        try:
            with scene_io.batch_scene(self.args.fps):
                if self.character is not None and self.character.path is not None:
                    self.placement = scene_io.check_character(self.character)  # no daemon yet
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
        except CHARACTER_ERRORS as exc:
            print(f"error: {explain(exc)}", file=sys.stderr)
            return EXIT_USAGE
        finally:
            motion_client.shutdown()
        written = self._summary(started, session)
        return EXIT_OK if written and not self.failures else EXIT_FAILED

    def _one(self, session: GenerationSession, planned: PlannedItem, total: int) -> None:
        from . import scene_io

        item = planned.item
        label = f"[{item.index}/{total}] {item.settings.prompt[:60]!r}"
        settings = item.settings
        if self.placement is not None and settings.constraints is not None:
            constraints = self.placement.constraints(settings.constraints)
            settings = dataclasses.replace(settings, constraints=constraints)
        try:
            request = build_request(settings, session.limits)
        except errors.HYMotionError as exc:
            self._fail(planned, exc)
            return
        outcome = self._generate(session, request, label)
        if isinstance(outcome, Failed):
            if isinstance(outcome.error, errors.DaemonUnreachable):
                raise outcome.error
            self._fail(planned, outcome.error)
            return
        records = scene_io.write_outputs(outcome.result, session.server, request, planned.folder,
                                         planned.blend, self.formats, self.args.overwrite,
                                         self.finish, self.character)  # fmt: skip
        for record in records:
            record.update(prompt_index=item.index, where=item.where)
            self.records.append(record)
            if record["error"]:
                self.failures.append(record)
            written = "".join(f"\n  wrote {path}" for path in record["files"])
            print(f"{label} seed {record['seed']}: {record['error'] or 'ok'}{written}", flush=True)

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

    def _fail(self, planned: PlannedItem, exc: errors.HYMotionError) -> None:
        """The whole prompt failed: one record, naming its seeds."""
        info, item = explain(exc), planned.item
        record = {"prompt_index": item.index, "where": item.where, "prompt": item.settings.prompt,
                  "seed": planned.first_seed, "seeds": planned.seeds, "files": [],
                  "error": str(info), "code": exc.code}  # fmt: skip
        self.records.append(record)
        self.failures.append(record)
        print(f"[{item.index}] FAILED {item.where} {planned.describe_seeds()}: {info}", flush=True)

    def _summary(self, started: float, session: GenerationSession) -> bool:
        """Write summary.json and print the closing lines; False if it could not be written."""
        summary: dict[str, Any] = {
            "ok": not self.failures,
            "seconds": round(time.monotonic() - started, 3),
            "daemon": dataclasses.asdict(session.server),
            "finishing": self.finish.as_dict(),
            "character": self.character.as_dict() if self.character else None,
            "items": self.records,
            "failures": [
                f"{f['where']} {describe_seeds(f.get('seeds') or [f['seed']])}: {f['error']}"
                for f in self.failures
            ],
        }
        path = summary_path(self.args.out)
        try:
            # Checked before the first request too; refused here if one appeared meanwhile.
            with atomic_path(path, overwrite=self.args.overwrite) as temp:
                temp.write_text(json.dumps(summary, indent=2))
        except errors.HYMotionError as exc:
            print(f"error: could not write {path}: {explain(exc)}", file=sys.stderr)
            written = False
        else:
            written = True
        done = sum(1 for r in self.records if not r["error"])
        print(f"done: {done} item(s) succeeded, {len(self.failures)} failed; summary: {path}")
        for line in summary["failures"]:
            print(f"FAILED {line}")
        return written


def exit_with(code: int) -> NoReturn:
    """End the batch with ``code``; where the bpy module cannot exit cleanly
    (:func:`unsafe_module_exit`), with everything written and flushed, without the
    interpreter's clean-up."""
    if unsafe_module_exit():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def unsafe_module_exit() -> bool:
    """Whether this process runs a bpy *module* whose interpreter exit fails after the work is
    done. 4.2's crashes (SIGSEGV: exit code 139) once a property with an update callback has
    been registered, even if unregistered since. 4.5's hangs for ever once its delayed-close
    thread has started (Rigify generating a rig starts it): a destructor at exit
    waits on that thread's condition variable. 5.0 and later, and a real Blender, exit
    normally."""
    bpy = sys.modules.get("bpy")
    return bpy is not None and not bpy.app.binary_path and bpy.app.version < (5, 0, 0)


if __name__ == "__main__":
    exit_with(main())
