"""A Y-up BVH writer from model-space motion (no bpy).

Blender's own BVH exporter writes Z-up armature space with no axis option, so other tools open
its files lying down (blender_notes §1.6). This writer keeps the model's Y-up convention, which
is what BVH readers expect: rest pose = identity rotations with world-aligned joint frames (the
SMPL convention of the daemon's skeleton), offsets from the parent, rotation channels
``Zrotation Xrotation Yrotation`` (matrix Rz·Rx·Ry), degrees, centimetres by default.

The root's position channels hold the pelvis world position and its OFFSET is zero. Readers
differ on whether a root's channels are added to its OFFSET (bvhio and Blender's importer take
them as the position; others add): with a zero OFFSET both readings put the pelvis at the same
place. (A rest-pose OFFSET would move every frame by it, 19 cm down, in readers that add.)
"""

from __future__ import annotations

import io

import numpy as np

from .protocol import motion
from .rig import C, rig_layout

#: BVH files are read as centimetres by most tools (MotionBuilder, Maya, Mixamo).
DEFAULT_SCALE = 100.0


def matrices_to_euler_zxy(matrices: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 3) angles (z, x, y) in radians, M = Rz·Rx·Ry."""
    m = matrices
    x = np.arcsin(np.clip(m[..., 2, 1], -1.0, 1.0))
    regular = np.abs(m[..., 2, 1]) < 1.0 - 1e-9
    z = np.where(
        regular, np.arctan2(-m[..., 0, 1], m[..., 1, 1]), np.arctan2(m[..., 1, 0], m[..., 0, 0])
    )
    y = np.where(regular, np.arctan2(-m[..., 2, 0], m[..., 2, 2]), 0.0)
    return np.stack([z, x, y], axis=-1)


def write_bvh(
    skeleton: motion.Skeleton,
    rotations: np.ndarray,
    root_positions: np.ndarray,
    fps: float,
    scale: float = DEFAULT_SCALE,
) -> str:
    """The BVH text of one take: (F, J, 4) model quaternions, (F, 3) pelvis world positions."""
    order = _depth_first(skeleton)
    tails = rig_layout(skeleton).tails @ C  # back to model space
    rest = skeleton.rest_positions.astype(np.float64)
    out = io.StringIO()
    out.write("HIERARCHY\n")
    _write_joint(out, skeleton, 0, rest, tails, scale, depth=0)
    euler = np.degrees(
        matrices_to_euler_zxy(motion.quaternion_to_matrix(rotations.astype(np.float64)))
    )
    # Unwrap 360° jumps so tools interpolating between frames do not spin.
    euler = np.degrees(np.unwrap(np.radians(euler), axis=0))
    frames = rotations.shape[0]
    columns = np.concatenate(
        [root_positions.astype(np.float64) * scale, euler[:, order, :].reshape(frames, -1)], axis=1
    )
    out.write(f"MOTION\nFrames: {frames}\nFrame Time: {1.0 / fps:.8f}\n")
    np.savetxt(out, columns, fmt="%.6f", delimiter=" ")
    return out.getvalue()


def _depth_first(skeleton: motion.Skeleton) -> list[int]:
    order: list[int] = []
    stack = [0]
    while stack:
        joint = stack.pop()
        order.append(joint)
        stack.extend(reversed(skeleton.children(joint)))
    return order


def _write_joint(
    out: io.StringIO,
    skeleton: motion.Skeleton,
    joint: int,
    rest: np.ndarray,
    tails: np.ndarray,
    scale: float,
    depth: int,
) -> None:
    pad = "\t" * depth
    parent = int(skeleton.parents[joint])
    offset = rest[joint] - rest[parent] if parent >= 0 else np.zeros(3)
    name = skeleton.joint_names[joint].replace(" ", "_")
    if parent < 0:
        out.write(f"ROOT {name}\n{pad}{{\n")
        channels = "CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation"
    else:
        out.write(f"{pad}JOINT {name}\n{pad}{{\n")
        channels = "CHANNELS 3 Zrotation Xrotation Yrotation"
    out.write(f"{pad}\tOFFSET {_vec(offset * scale)}\n{pad}\t{channels}\n")
    children = skeleton.children(joint)
    for child in children:
        _write_joint(out, skeleton, child, rest, tails, scale, depth + 1)
    if not children:
        end = (tails[joint] - rest[joint]) * scale
        out.write(f"{pad}\tEnd Site\n{pad}\t{{\n{pad}\t\tOFFSET {_vec(end)}\n{pad}\t}}\n")
    out.write(f"{pad}}}\n")


def _vec(v: np.ndarray) -> str:
    return " ".join(f"{float(x):.6f}" for x in v)
