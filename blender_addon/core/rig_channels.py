"""F-Curves of a take on the artist's rig: each bone in its own rotation mode (no bpy)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from . import euler
from .channels import Channel, bone_path, escape_identifier
from .retarget import RigTake
from .rig_conventions import RigSwitch

#: Pose-bone rotation property per Blender rotation mode (Euler orders share one).
_QUATERNION, _AXIS_ANGLE = "QUATERNION", "AXIS_ANGLE"


def rig_channels(
    take: RigTake,
    rotation_modes: Mapping[str, str],
    switches: Sequence[RigSwitch] = (),
    frame_start: int = 1,
    skip: frozenset[str] = frozenset(),
) -> list[Channel]:
    """Rotation curves per keyed bone (quaternion, Euler in the bone's order, or axis-angle),
    location curves of the root-motion bones, and constant curves for rig switches. Keys are
    per frame, LINEAR; a constant channel gets a key on the first and the last frame. Bones in
    ``skip`` get no curves (fingers the artist animates)."""
    frames = take.quaternions.shape[0]
    curves: list[tuple[str, int, str]] = []  # (data path, index, group) per column of values
    blocks: list[np.ndarray] = []  # (F, n) values of n curves
    for k, bone in enumerate(take.location_bones):
        curves += [(bone_path(bone, "location"), i, bone) for i in range(3)]
        blocks.append(take.locations[:, k])
    for k, bone in enumerate(take.bone_names):
        if bone in skip:
            continue
        mode = rotation_modes.get(bone, _QUATERNION)
        q = take.quaternions[:, k]
        if mode == _QUATERNION:
            prop, values = "rotation_quaternion", q
        elif mode == _AXIS_ANGLE:
            prop, values = "rotation_axis_angle", euler.to_axis_angle(q)
        else:
            prop, values = "rotation_euler", euler.to_euler(q, mode)
        curves += [(bone_path(bone, prop), i, bone) for i in range(values.shape[1])]
        blocks.append(values)
    for switch in switches:
        path = f'pose.bones["{escape_identifier(switch.bone)}"]["{escape_identifier(switch.prop)}"]'
        curves.append((path, 0, switch.bone))
        blocks.append(np.full((frames, 1), switch.value))
    if not curves:
        return []
    # Every curve's keys in one array (curve, frame, (frame, value)): one pass, no per-curve
    # numpy calls; each channel's keys are a contiguous view of it.
    values = np.concatenate(blocks, axis=1)  # (F, C)
    co = np.empty((len(curves), frames, 2), dtype=np.float32)
    co[:, :, 0] = np.arange(frame_start, frame_start + frames, dtype=np.float32)
    co[:, :, 1] = values.T
    # A channel that never changes (relaxed fingers, switches) needs its two end keys only.
    constant = np.all(values == values[0], axis=0)
    ends = [0, -1]
    return [
        Channel(path, index, group, (co[c, ends] if constant[c] else co[c]).reshape(-1))
        for c, (path, index, group) in enumerate(curves)
    ]
