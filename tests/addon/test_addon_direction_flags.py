"""The batch's direction flags, through real batch runs against a daemon on the real tiny engine:
they mirror the JSON job file's "direct" object (the same job either way gives the same take),
in-between two BVH poses, a timeline from --segment flags with a --path, and conflicting or
misplaced flags refused in plain words before anything is generated."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from blender_addon.batch import parser as batch_parser
from blender_addon.core import directing_cli
from blender_addon.core.motion import bvh_import
from tests.addon.conftest import StartDaemon
from tests.addon.test_addon_directed_batch import (
    BVH_TOL_M,
    KICK,
    ROOT,
    WALK,
    _local_joints,
    _written_take,
)

#: Nothing answers here: the refused runs stop before they connect.
NO_DAEMON = "tcp://127.0.0.1:9"


def batch(
    tmp_path: Path, address: str, prompts: str, *flags: str
) -> subprocess.CompletedProcess[str]:
    """One batch run of ``prompts`` (a text prompt file's content, or JSON when it starts with
    '[') with ``flags``, one candidate of 6 steps, BVH out."""
    tmp_path.mkdir(exist_ok=True)
    path = tmp_path / ("jobs.json" if prompts.startswith("[") else "prompts.txt")
    path.write_text(prompts)
    command = [sys.executable, "-m", "blender_addon.batch", "--prompts", str(path),
               "--out", str(tmp_path / "out"), "--address", address, "--steps", "6",
               "--candidates", "1", "--seed", "4", "--formats", "bvh", *flags]  # fmt: skip
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_in_between_two_bvh_poses_by_flags_is_the_json_job_take(
    tmp_path: Path, start_daemon: StartDaemon
) -> None:
    tiny_daemon = start_daemon(real_engine=True)
    flags = batch(tmp_path / "flags", tiny_daemon.address, "a person walks over and kicks\n",
                  "--duration", "3", "--start-from", f"{WALK}:-1",
                  "--end-pose", f"{KICK}:40", "--end-frame", "70")  # fmt: skip
    assert flags.returncode == 0, flags.stdout + flags.stderr
    job = {"prompt": "a person walks over and kicks", "duration_s": 3,
           "direct": {"start_from": {"bvh": str(WALK), "frame": -1},
                      "end_pose": {"bvh": str(KICK), "frame": 40, "at": 70}}}  # fmt: skip
    by_json = batch(tmp_path / "json", tiny_daemon.address, json.dumps([job]))
    assert by_json.returncode == 0, by_json.stdout + by_json.stderr
    folder = "out/001_a_person_walks_over_and_kicks"
    rotations, roots = _written_take(tmp_path / "flags" / folder)
    json_rotations, json_roots = _written_take(tmp_path / "json" / folder)
    assert np.array_equal(rotations, json_rotations) and np.array_equal(roots, json_roots)
    walk, kick = bvh_import.load_bvh_take(WALK), bvh_import.load_bvh_take(KICK)
    assert rotations.shape[0] == 90
    start = _local_joints(rotations[:1]) - _local_joints(walk.rotations[-1:])
    key = _local_joints(rotations[70:71]) - _local_joints(kick.rotations[40:41])
    assert np.abs(start).max() < BVH_TOL_M and np.abs(key).max() < BVH_TOL_M


def test_a_timeline_of_segment_flags_along_a_path(
    tmp_path: Path, start_daemon: StartDaemon
) -> None:
    tiny_daemon = start_daemon(real_engine=True)
    result = batch(tmp_path, tiny_daemon.address, "a person walks | duration=2\n",
                   "--segment", "a person waves: 1.5", "--segment", "a person turns: 1",
                   "--path", "0:0,0", "--path", "100:1,-2")  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    rotations, roots = _written_take(tmp_path / "out" / "001_a_person_walks")
    assert rotations.shape[0] == 60 + 45 + 30
    start, end = roots[0], roots[100]  # Blender (x, y) = model (x, −z)
    assert np.allclose(end[[0, 2]] - start[[0, 2]], [1.0, 2.0], atol=BVH_TOL_M)


def test_conflicting_and_misplaced_flags_are_refused_before_anything_runs(tmp_path: Path) -> None:
    directed_job = json.dumps([{"prompt": "walk", "direct": {"loop": True}}])
    cases = [
        ("walk\n", ["--end-frame", "40"], "--end-frame needs --end-pose"),
        ("walk\n", ["--no-exact"], "--no-exact needs a direction flag"),
        ("walk\n", ["--segment", "wave:2", "--direct-loop"],
         "--direct-loop cannot go with a timeline (--segment/--timeline)"),
        ("walk\n", ["--segment", "wave:2", "--timeline", str(tmp_path / "rows.txt")],
         "give the timeline with --segment flags or with --timeline FILE, not both"),
        ("walk\n", ["--segment", "wave"], "--segment takes PROMPT:SECONDS; got 'wave'"),
        ("walk\n", ["--path", "10:1"], "--path takes FRAME:X,Y or FRAME:X,Y,HEADING_DEG"),
        ("walk\n", ["--end-pose", f"{KICK}:500"],
         "--end-pose: direct.end_pose.frame 500 is outside the BVH's"),
        (directed_job, ["--direct-loop"],
         "jobs.json[1] has its own 'direct' object and the command line has direction flags"),
    ]  # fmt: skip
    for prompts, flags, message in cases:
        result = batch(tmp_path, NO_DAEMON, prompts, *flags)
        assert result.returncode == 2, (flags, result.stdout, result.stderr)
        assert message in result.stderr, (flags, result.stderr)
        assert not (tmp_path / "out").exists()  # nothing generated, nothing written
    bvh = subprocess.run([sys.executable, "-m", "blender_addon.batch", "--bvh", str(WALK),
                          "--out", str(tmp_path / "out"), "--start-from", str(WALK)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert bvh.returncode == 2 and "do not apply to --bvh takes" in bvh.stderr


def test_a_timeline_file_gives_the_rows_of_the_segment_flags(tmp_path: Path) -> None:
    rows = [{"prompt": "a person waves", "duration_s": 1.5},
            {"prompt": "a person says: hello", "duration_s": 2.0}]  # fmt: skip
    (tmp_path / "rows.json").write_text(json.dumps(rows))
    (tmp_path / "rows.txt").write_text(
        "# after the walk\na person waves:1.5\n\na person says: hello : 2\n"
    )
    flags = ["--segment", "a person waves:1.5", "--segment", "a person says: hello:2"]
    directs = [
        directing_cli.direct_from_args(batch_parser().parse_args(["--out", "x", *extra]))
        for extra in (flags, ["--timeline", str(tmp_path / "rows.json")],
                      ["--timeline", str(tmp_path / "rows.txt")])
    ]  # fmt: skip
    assert directs[0] == directs[1] == directs[2] == {"timeline": rows}


def test_headings_on_some_path_points_only_are_refused_not_dropped() -> None:
    from blender_addon.core.directing import constraints_from_json
    from blender_addon.core.errors import BatchInputError

    path = [{"frame": 0, "x": 0, "y": 0, "heading_deg": 90}, {"frame": 60, "x": 1, "y": 2}]
    try:
        constraints_from_json({"path": path}, "jobs.json[1]", Path.cwd(), 3.0)
    except BatchInputError as exc:
        assert exc.details["field"] == "direct.path[1].heading_deg"
        assert "give heading_deg on every point, or on none" in exc.message
    else:
        raise AssertionError("a path with headings on some points only was accepted")
    for point in path:  # the same points, headings on every one or on none: accepted
        point["heading_deg"] = 0.0
    headed = constraints_from_json({"path": path}, "jobs.json[1]", Path.cwd(), 3.0)
    assert headed is not None and headed.path_points is not None
    assert headed.path_points.shape == (2, 3)
