"""The add-on's BVH files as other tools read them: two BVH readers from PyPI that share no code
with the add-on or Blender (``bvh`` parses, ``bvhio`` also poses the hierarchy) put every joint
of every frame where the daemon's ``joint_positions`` say, within 1 mm. Blender's own importer
is checked in test_addon_scene.py.

A root OFFSET can be read two ways: added to the root's position channels (the reading of
``fk_adding_offsets`` below, as in the BVH format's usual description) or ignored for the root
(bvhio, Blender). Both must give the same answer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from blender_addon import history
from blender_addon.core.session import ServerInfo
from tests.addon.test_addon_scene import make_result

bvh = pytest.importorskip("bvh")
bvhio = pytest.importorskip("bvhio")

TOLERANCE_CM = 0.1  # 1 mm; the files are in centimetres


def axis_rotation(axis: str, degrees: float) -> np.ndarray:
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    i, j = {"X": (1, 2), "Y": (2, 0), "Z": (0, 1)}[axis]
    matrix = np.eye(3)
    matrix[i, i], matrix[i, j], matrix[j, i], matrix[j, j] = c, -s, s, c
    return matrix


def fk_adding_offsets(text: str, names: tuple[str, ...]) -> np.ndarray:
    """(F, J, 3) joint positions from the ``bvh`` package's parse: each joint at its parent's
    position plus the parent's rotation of (OFFSET + position channels); rotations composed in
    the order the channels are listed."""
    mocap = bvh.Bvh(text)
    order = mocap.get_joints_names()
    out = np.zeros((mocap.nframes, len(names), 3))
    for frame in range(mocap.nframes):
        world: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for name in order:
            channels = mocap.joint_channels(name)
            values = dict(zip(channels, mocap.frame_joint_channels(frame, name, channels),
                              strict=True))  # fmt: skip
            local = np.array(mocap.joint_offset(name), dtype=float)
            local += [values.get(f"{axis}position", 0.0) for axis in "XYZ"]
            rotation = np.eye(3)
            for channel in channels:
                if channel.endswith("rotation"):
                    rotation = rotation @ axis_rotation(channel[0], values[channel])
            parent = mocap.joint_parent(name)
            if parent is None:
                world[name] = (local, rotation)
            else:
                parent_position, parent_rotation = world[parent.name]
                world[name] = (parent_position + parent_rotation @ local,
                               parent_rotation @ rotation)  # fmt: skip
        out[frame] = [world[name][0] for name in names]
    return out


def fk_bvhio(path: Path, names: tuple[str, ...], frames: int) -> np.ndarray:
    root = bvhio.readAsHierarchy(str(path))
    joints = {joint.Name: joint for joint, _, _ in root.layout()}
    out = np.zeros((frames, len(names), 3))
    for frame in range(frames):
        root.loadPose(frame)
        out[frame] = [tuple(joints[name].PositionWorld) for name in names]
    return out


def test_two_independent_readers_put_every_joint_where_the_daemon_did(
    scene: Any, tmp_path: Path
) -> None:
    result = make_result(candidates=1, frames=40)
    (take,) = history.add_result(scene, result, ServerInfo())
    (path,) = history.export_take(scene, take, tmp_path, ["BVH"])
    names = result.skeleton.joint_names
    expected = result.joint_positions[0] * 100.0  # model space: Y up, metres -> centimetres
    adding = fk_adding_offsets(path.read_text(), names)
    assert np.abs(adding - expected).max() < TOLERANCE_CM
    posed = fk_bvhio(path, names, result.frames)
    assert np.abs(posed - expected).max() < TOLERANCE_CM
