"""The batch's ``--bvh`` mode: BVH files used as takes, finished and written like generated ones.

No daemon is needed. Per file it writes ``DIR/NNN_<file stem>/NNN_<file stem>.blend`` and
``<stem>_s0.fbx`` / ``.bvh`` with the batch's finishing options applied (and retargeted onto
``--target-rig`` when given), then ``DIR/summary.json`` (the same layout as a prompt batch,
without a daemon).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from .core import naming
from .core.batch_plan import summary_path
from .core.describe import explain
from .core.files import atomic_path
from .core.finishing.options import FinishOptions
from .core.motion import bvh_import
from .core.protocol import errors
from .core.rig_cli import CHARACTER_ERRORS, RigTarget
from .core.session import ServerInfo

BVH_SERVER = ServerInfo(model="bvh", model_label="BVH import")


def run(
    args: argparse.Namespace,
    formats: tuple[str, ...],
    finish: FinishOptions,
    character: RigTarget | None = None,
) -> int:
    """Write every ``args.bvh`` file as a finished take; exit code 0 only if all succeeded,
    2 when the ``--target-rig`` character cannot be loaded or mapped (nothing written)."""
    from . import scene_io  # bpy is imported only once the arguments are known to be good

    started = time.monotonic()
    out = args.out.expanduser().resolve()  # summary.json and the log name absolute paths
    records: list[dict[str, Any]] = []
    with scene_io.batch_scene(args.fps):
        if character is not None and character.path is not None:
            try:
                scene_io.check_character(character)  # before any file is written
            except CHARACTER_ERRORS as exc:
                print(f"error: {explain(exc)}", file=sys.stderr)
                return 2
        for index, path in enumerate(args.bvh, start=1):
            folder = out / f"{index:03d}_{naming.slug(Path(path).stem)}"
            try:
                take = bvh_import.load_bvh_take(Path(path))
                result = bvh_import.as_result(take, Path(path).stem)
                blend = folder / f"{folder.name}.blend" if "blend" in formats else None
                written = scene_io.write_outputs(result, BVH_SERVER, None, folder, blend,
                                                 formats, args.overwrite, finish,
                                                 character)  # fmt: skip
                convention = take.convention
            except errors.HYMotionError as exc:
                written = [{"prompt": Path(path).stem, "files": []}]
                scene_io.mark_failed(written[0], exc)
                convention = None
            for record in written:
                record.update(bvh=str(path), convention=convention)
                records.append(record)
                written_lines = "".join(f"\n  wrote {file}" for file in record["files"])
                outcome = about_file(record["bvh"], record["error"] or "ok")
                print(f"[{index}/{len(args.bvh)}] {outcome}{written_lines}", flush=True)
    failures = [about_file(r["bvh"], r["error"]) for r in records if r["error"]]
    summary = {"ok": not failures, "seconds": round(time.monotonic() - started, 3),
               "daemon": None, "finishing": finish.as_dict(),
               "character": character.as_dict() if character else None, "items": records,
               "failures": failures}  # fmt: skip
    path = summary_path(out)
    saved = True
    try:  # checked before the first clip too; refused here if one appeared meanwhile
        with atomic_path(path, overwrite=args.overwrite) as temp:
            temp.write_text(json.dumps(summary, indent=2))
    except errors.HYMotionError as exc:
        print(f"error: could not write {path}: {explain(exc)}", file=sys.stderr)
        saved = False
    print(f"done: {len(records) - len(failures)} item(s) succeeded, {len(failures)} failed; "
          f"summary: {path}")  # fmt: skip
    return 0 if saved and not failures else 1


def about_file(path: str, outcome: str) -> str:
    """``<path>: <outcome>``, the file named once: the BVH reader's errors name it already."""
    return outcome if path in outcome else f"{path}: {outcome}"
