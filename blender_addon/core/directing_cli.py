"""The batch's direction flags (no bpy): the JSON job file's ``"direct"`` object on the command
line. Each flag sets one key of that object, and the object goes through the same parser as a
job file's (``directing.constraints_from_json``), for every prompt of the batch:

    --start-from FILE[:FRAME]   "start_from": FILE  /  {"bvh": FILE, "frame": FRAME}
    --end-pose FILE[:FRAME]     "end_pose": {"bvh": FILE, "frame": FRAME}
    --end-frame N               "end_pose": {..., "at": N}
    --path FRAME:X,Y[,HEADING]  "path": [{"frame", "x", "y"[, "heading_deg"]}, ...] (repeatable)
    --direct-loop               "loop": true
    --segment PROMPT:SECONDS    "timeline": [{"prompt", "duration_s"}, ...] (repeatable)
    --timeline FILE             "timeline": a JSON list of those rows, or PROMPT:SECONDS lines
    --no-exact                  "exact": false

File paths are made absolute against the current directory.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .directing import BLANK_ROW_FIX, constraints_from_json
from .errors import BatchInputError

#: The flag that sets each key of the "direct" object (for messages).
FLAG_OF_KEY = {"start_from": "--start-from", "end_pose": "--end-pose", "path": "--path",
               "loop": "--direct-loop", "timeline": "--segment/--timeline",
               "exact": "--no-exact"}  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "direction",
        "hold every prompt's clip to poses, a path, a loop or a timeline: the JSON job file's "
        '"direct" object as flags (docs/addon.md; needs a daemon with the constraints '
        "capability)",
    )
    group.add_argument("--start-from", metavar="FILE[:FRAME]",
                       help="continue from the last 15 frames of this BVH take; with :FRAME "
                       "start from that frame's pose (negative counts from the end)")  # fmt: skip
    group.add_argument("--end-pose", metavar="FILE[:FRAME]",
                       help="land on frame FRAME (default 0) of this BVH")  # fmt: skip
    group.add_argument(
        "--end-frame",
        type=int,
        metavar="N",
        help="with --end-pose: the clip frame of that pose (default: last)",
    )
    group.add_argument("--path", action="append", default=[], metavar="FRAME:X,Y[,HEADING]",
                       help="pelvis ground point in scene metres at a clip frame, optionally "
                       "facing HEADING degrees about +Z (repeatable)")  # fmt: skip
    group.add_argument("--direct-loop", action="store_true",
                       help="generate a loop: the clip's end joins its start (--loop trims a "
                       "finished take instead)")  # fmt: skip
    group.add_argument(
        "--segment",
        action="append",
        default=[],
        metavar="PROMPT:SECONDS",
        help="a further prompt continuing the clip (repeatable, in order)",
    )
    group.add_argument("--timeline", type=Path, metavar="FILE",
                       help="further prompts from a file: a JSON list of {prompt, duration_s} "
                       "or one PROMPT:SECONDS per line")  # fmt: skip
    group.add_argument(
        "--no-exact",
        action="store_true",
        help="no clean-up: constrained frames within the sampler's bound",
    )


def any_given(args: argparse.Namespace) -> bool:
    """Whether any direction flag was given."""
    return any((args.start_from, args.end_pose, args.end_frame is not None, args.path,
                args.direct_loop, args.segment, args.timeline, args.no_exact))  # fmt: skip


def direct_from_args(args: argparse.Namespace) -> dict[str, Any] | None:
    """The flags as a ``"direct"`` object (None when no direction flag is given), checked as a
    job file's would be; a bad or conflicting flag raises ``BatchInputError`` naming it."""
    direct: dict[str, Any] = {}
    if args.start_from is not None:
        direct["start_from"] = _bvh_frame(args.start_from, "--start-from", frame_given_only=True)
    if args.end_pose is not None:
        direct["end_pose"] = _bvh_frame(args.end_pose, "--end-pose")
        if args.end_frame is not None:
            direct["end_pose"]["at"] = args.end_frame
    elif args.end_frame is not None:
        raise BatchInputError("--end-frame needs --end-pose (the pose to land on at that frame)",
                              field="--end-frame")  # fmt: skip
    if args.path:
        direct["path"] = [_path_point(text) for text in args.path]
    if args.segment and args.timeline is not None:
        raise BatchInputError("give the timeline with --segment flags or with --timeline FILE, "
                              "not both", field="--timeline")  # fmt: skip
    if args.segment:
        direct["timeline"] = [_segment(text, "--segment") for text in args.segment]
    if args.timeline is not None:
        direct["timeline"] = _timeline_file(args.timeline)
    if args.direct_loop:
        if "timeline" in direct:
            raise BatchInputError("--direct-loop cannot go with a timeline (--segment/--timeline): "
                                  "generate the loop as one clip of up to 12 s",
                                  field="--direct-loop")  # fmt: skip
        direct["loop"] = True
    if args.no_exact:
        if not direct:  # nothing constrained: it would only ask the daemon for constraints
            raise BatchInputError("--no-exact needs a direction flag (--start-from, --end-pose, "
                                  "--path, --direct-loop, --segment, --timeline) to relax",
                                  field="--no-exact")  # fmt: skip
        direct["exact"] = False
    if not direct:
        return None
    for key, value in direct.items():  # each flag alone, so that a message names its flag
        try:
            constraints_from_json({key: value}, FLAG_OF_KEY[key], Path.cwd(), args.duration)
        except BatchInputError as exc:
            raise BatchInputError(exc.message, field=FLAG_OF_KEY[key]) from exc
    return direct


def _bvh_frame(text: str, flag: str, frame_given_only: bool = False) -> Any:
    """``FILE[:FRAME]`` -> ``{"bvh": FILE, "frame": FRAME}`` (FRAME default 0), or just FILE
    when ``frame_given_only`` and no frame is given. A tail that is not a whole number stays
    part of the path (``C:\\takes\\walk.bvh``)."""
    path, sep, tail = text.rpartition(":")
    frame = _whole(tail) if sep else None
    if frame is None:
        path = text
    absolute = str(Path(path).expanduser().absolute())
    if frame is None and frame_given_only:
        return absolute
    return {"bvh": absolute, "frame": frame or 0}


def _path_point(text: str) -> dict[str, Any]:
    frame, sep, rest = text.partition(":")
    numbers = [_number(n) for n in rest.split(",")]
    if not sep or _whole(frame) is None or len(numbers) not in (2, 3) or None in numbers:
        raise BatchInputError(f"--path takes FRAME:X,Y or FRAME:X,Y,HEADING_DEG; got {text!r}",
                              field="--path")  # fmt: skip
    point = {"frame": _whole(frame), "x": numbers[0], "y": numbers[1]}
    if len(numbers) == 3:
        point["heading_deg"] = numbers[2]
    return point


def _segment(text: str, where: str) -> dict[str, Any]:
    prompt, sep, seconds = text.rpartition(":")
    duration = _number(seconds) if sep else None
    if duration is None:
        raise BatchInputError(f"{where} takes PROMPT:SECONDS; got {text!r}",
                              field=where.split()[0])  # fmt: skip
    if not prompt.strip():
        raise BatchInputError(f"{where}: the prompt before ':' is empty in {text!r}: "
                              f"{BLANK_ROW_FIX}", field=where.split()[0])  # fmt: skip
    return {"prompt": prompt.strip(), "duration_s": duration}


def _timeline_file(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BatchInputError(f"--timeline: cannot read {path}: {exc}",
                              field="--timeline") from exc  # fmt: skip
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)  # checked like a job file's "timeline"
        except json.JSONDecodeError as exc:
            raise BatchInputError(f"--timeline: {path} is not valid JSON: {exc}",
                                  field="--timeline") from exc  # fmt: skip
    lines = [(n, line.strip()) for n, line in enumerate(text.splitlines(), start=1)]
    rows = [_segment(line, f"--timeline {path.name}:{n}") for n, line in lines
            if line and not line.startswith("#")]  # fmt: skip
    if not rows:
        raise BatchInputError(f"--timeline: {path} holds no rows", field="--timeline")
    return rows


def _whole(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None
