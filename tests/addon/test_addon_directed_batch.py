"""Directed jobs in the headless batch's JSON job file, against a daemon on the real tiny
engine: continue from a BVH take's end, land on a BVH pose, follow a path, a timeline."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from blender_addon.core.motion import bvh_import
from blender_addon.core.motion.skeletons import MODEL_SKELETON as BODY_SKELETON
from shared_protocol import forward_kinematics
from tests.support import DaemonProcess

ROOT = Path(__file__).resolve().parents[2]
MOCAP = ROOT / "examples" / "mocap"
WALK, KICK = MOCAP / "walk_forward_cmu_35_01.bvh", MOCAP / "kick_cmu_10_02_daz.bvh"
#: The exported BVH rounds to its own decimals; constrained frames come back within this.
BVH_TOL_M = 2e-3


@pytest.fixture(scope="module")
def tiny_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    # Its own process on .venv (HYMOTION_DAEMON_PYTHON): the daemon package needs torch, which
    # the bpy venvs of the other Blender versions do not have.
    process = DaemonProcess(tmp_path_factory.mktemp("daemon"), ["--batch-window-s", "0.005"],
                            entry=DaemonProcess.REAL_ENGINE, start_timeout_s=180.0)  # fmt: skip
    try:
        yield process.start()
    finally:
        process.kill()


def run_batch(jobs: list[Any], tmp_path: Path, address: str) -> subprocess.CompletedProcess[str]:
    prompts = tmp_path / "jobs.json"
    prompts.write_text(json.dumps(jobs))
    command = [sys.executable, "-m", "blender_addon.batch", "--prompts", str(prompts),
               "--out", str(tmp_path / "out"), "--address", address, "--steps", "6",
               "--candidates", "1", "--seed", "4", "--formats", "bvh"]  # fmt: skip
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


def _written_take(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """The batch's one BVH: rotations (F, 22, 4) in model joint order, pelvis metres (F, 3)."""
    (path,) = folder.glob("*.bvh")
    clip = bvh_import.read_bvh(path)
    order = [clip.names.index(name) for name in BODY_SKELETON.joint_names]
    rest = clip.skeleton().rest_positions.astype(np.float64)
    model_rest = BODY_SKELETON.rest_positions.astype(np.float64)
    scale = np.linalg.norm(rest[order[1]] - rest[order[0]]) / np.linalg.norm(
        model_rest[1] - model_rest[0]
    )
    return clip.rotations()[:, order], clip.root_positions() / scale


def _local_joints(rotations: np.ndarray) -> np.ndarray:
    """Joints relative to the pelvis (each BVH import grounds on its own lowest point)."""
    pelvis = np.zeros((len(rotations), 3))
    return forward_kinematics(BODY_SKELETON, rotations, pelvis).astype(np.float64)


def test_continue_a_take_and_land_on_a_pose(tmp_path: Path, tiny_daemon: Any) -> None:
    job = {"prompt": "a person walks over and kicks", "duration_s": 3,
           "direct": {"start_from": str(WALK),
                      "end_pose": {"bvh": str(KICK), "frame": 40}}}  # fmt: skip
    result = run_batch([job], tmp_path, tiny_daemon.address)
    assert result.returncode == 0, result.stdout + result.stderr
    rotations, roots = _written_take(tmp_path / "out" / "001_a_person_walks_over_and_kicks")
    walk, kick = bvh_import.load_bvh_take(WALK), bvh_import.load_bvh_take(KICK)
    assert rotations.shape[0] == 90
    prefix = _local_joints(rotations[:15]) - _local_joints(walk.rotations[-15:])
    assert np.abs(prefix).max() < BVH_TOL_M
    key = _local_joints(rotations[89:]) - _local_joints(kick.rotations[40:41])
    assert np.abs(key).max() < BVH_TOL_M
    travel = roots[:15, [0, 2]] - roots[0, [0, 2]]
    walk_travel = walk.root_positions[-15:, [0, 2]] - walk.root_positions[-15, [0, 2]]
    assert np.abs(travel - walk_travel).max() < BVH_TOL_M


def test_a_path_and_a_timeline_in_one_job(tmp_path: Path, tiny_daemon: Any) -> None:
    job = {"prompt": "a person walks", "duration_s": 2,
           "direct": {"path": [{"frame": 0, "x": 0, "y": 0},
                               {"frame": 100, "x": 1.0, "y": -2.0}],
                      "timeline": [{"prompt": "a person waves", "duration_s": 1.5}]}}  # fmt: skip
    result = run_batch([job], tmp_path, tiny_daemon.address)
    assert result.returncode == 0, result.stdout + result.stderr
    rotations, roots = _written_take(tmp_path / "out" / "001_a_person_walks")
    assert rotations.shape[0] == 60 + 45
    start, end = roots[0], roots[100]  # Blender (x, y) = model (x, −z)
    assert np.allclose(end[[0, 2]] - start[[0, 2]], [1.0, 2.0], atol=BVH_TOL_M)


def test_bad_directions_name_the_field(tmp_path: Path, tiny_daemon: Any) -> None:
    unknown = run_batch([{"prompt": "walk", "direct": {"teleport": True}}], tmp_path,
                        tiny_daemon.address)  # fmt: skip
    assert unknown.returncode == 2 and "direct.teleport" not in unknown.stdout
    assert "unknown direct option 'teleport'" in unknown.stderr
    late = {"prompt": "walk", "duration_s": 2,
            "direct": {"end_pose": {"bvh": str(KICK), "at": 200}}}  # fmt: skip
    result = run_batch([late, "a person waves"], tmp_path, tiny_daemon.address)
    assert result.returncode == 1, result.stdout + result.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    (failure,) = summary["failures"]
    assert "frame 200 is outside the clip" in failure
    assert [item["error"] == "" for item in summary["items"]] == [False, True]


def test_the_docs_example_job_runs_as_written(tmp_path: Path, tiny_daemon: Any) -> None:
    """docs/addon.md's JSON job, verbatim, with its BVH files in place: a take, a pose to land
    on, a path, a timeline. Its path points must not sit on posed frames (the daemon refuses a
    path point away from a pose on the same frame)."""
    doc = (ROOT / "docs" / "addon.md").read_text(encoding="utf-8")
    example = doc.split("### Directed jobs", 1)[1].split("```json\n", 1)[1].split("```", 1)[0]
    for name, source in (("takes/walk.bvh", WALK), ("poses/sit.bvh", KICK)):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(source.read_bytes())
    (tmp_path / "jobs.json").write_text(example)
    command = [sys.executable, str(ROOT / "blender_addon" / "batch.py"), "--",
               "--prompts", "jobs.json", "--out", "out", "--address", tiny_daemon.address,
               "--steps", "4", "--candidates", "1", "--seed", "4", "--formats", "bvh"]  # fmt: skip
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["ok"] and summary["items"][0]["frames"] == 120 + 150
