"""F-Curve layout of a take: data paths and flat keyframe arrays for ``foreach_set`` (no bpy)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .conversion import PoseChannels


@dataclass(frozen=True, eq=False)
class Channel:
    data_path: str
    index: int
    group: str  # the bone's name: Blender groups a bone's curves under it
    #: (2 * F,) float32 interleaved (frame, value) pairs, ready for ``foreach_set("co")``.
    co: np.ndarray


def escape_identifier(name: str) -> str:
    """The same escaping as ``bpy.utils.escape_identifier``, for data paths."""
    return name.replace("\\", "\\\\").replace('"', '\\"')


def bone_path(bone: str, prop: str) -> str:
    return f'pose.bones["{escape_identifier(bone)}"].{prop}'


def pose_channels(
    names: tuple[str, ...], pose: PoseChannels, frame_start: int = 1
) -> list[Channel]:
    """4 quaternion curves per bone and 3 location curves on the root bone (joint 0)."""
    frames = np.arange(frame_start, frame_start + pose.frames, dtype=np.float32)
    co = np.empty((pose.frames, 2), dtype=np.float32)
    co[:, 0] = frames

    def keys(values: np.ndarray) -> np.ndarray:
        co[:, 1] = values
        return co.reshape(-1).copy()

    channels = [
        Channel(bone_path(names[0], "location"), axis, names[0], keys(pose.root_location[:, axis]))
        for axis in range(3)
    ]
    for joint, name in enumerate(names):
        path = bone_path(name, "rotation_quaternion")
        channels.extend(
            Channel(path, axis, name, keys(pose.quaternions[:, joint, axis])) for axis in range(4)
        )
    return channels
