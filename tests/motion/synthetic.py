"""A synthetic walk on the model skeleton with known foot contacts, built with the core's IK.

The pelvis moves forward at a constant speed; each foot alternates a stance (planted flat at
its step position: the known contact) and a swing (lifted along an arc to the next step). An
optional ``slide`` (m/s) drags each planted foot forward during its stance: injected skate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from blender_addon.core.motion import ik, kinematics
from blender_addon.core.motion import rotations as rot
from blender_addon.core.motion.skeletons import MODEL_SKELETON, model_legs

FPS = 30.0
SKELETON = MODEL_SKELETON
LEGS = model_legs(SKELETON)
REST = SKELETON.rest_positions.astype(np.float64)
#: rest heights above the sole (the body's lowest point): pelvis 0.970, ankles 0.105
SOLE = REST[:, 1].min() - 0.033


@dataclass(frozen=True, eq=False)
class Walk:
    rotations: np.ndarray  # (F, 22, 4)
    root_positions: np.ndarray  # (F, 3)
    joint_positions: np.ndarray  # (F, 22, 3)
    contacts: np.ndarray  # (F, 2) bool, known planted frames (left, right)


def walk(
    frames: int = 120,
    speed: float = 1.0,
    step_frames: int = 30,
    slide: float = 0.0,
    crouch: float = 0.06,
) -> Walk:
    """Alternating steps; each foot's cycle is ``step_frames`` long, 60 % stance."""
    t = np.arange(frames)
    pelvis = np.zeros((frames, 3))
    pelvis[:, 0] = REST[0, 0]
    pelvis[:, 1] = REST[0, 1] - SOLE - crouch + 0.01 * np.cos(4 * np.pi * t / step_frames)
    pelvis[:, 2] = speed * t / FPS
    stride = speed * step_frames / FPS  # one foot's step length
    stance = round(0.6 * step_frames)
    rotations = np.broadcast_to(rot.IDENTITY, (frames, 22, 4)).copy()
    contacts = np.zeros((frames, 2), dtype=bool)
    for leg, phase in ((0, 0), (1, step_frames // 2)):
        hip, knee, ankle = LEGS.hip[leg], LEGS.knee[leg], LEGS.ankle[leg]
        targets = np.zeros((frames, 3))
        for f in range(frames):
            cycle, k = divmod(f + phase, step_frames)
            # the foot lands under the pelvis' position at mid-stance of its cycle
            mid_stance = cycle * step_frames - phase + stance / 2
            land_z = speed * mid_stance / FPS + REST[ankle, 2] - REST[0, 2]
            x = REST[ankle, 0]
            if k < stance:
                contacts[f, leg] = True
                z = land_z + slide * k / FPS
                y = 0.105
            else:
                s = (k - stance + 1) / (step_frames - stance + 1)
                z = land_z + slide * stance / FPS + (stride - slide * stance / FPS) * s
                y = 0.105 + 0.08 * np.sin(np.pi * s)
            targets[f] = (x, y, z)
        world_hip = np.broadcast_to(REST[hip] - REST[0], (frames, 3)) + pelvis
        offsets = REST[[knee, ankle]] - REST[hip]
        solution = ik.two_bone_ik(
            world_hip,
            world_hip + offsets[0],
            world_hip + offsets[1],
            targets,
            pole=np.broadcast_to([0.0, 0.0, 1.0], (frames, 3)),
        )
        rotations[:, hip] = solution.upper  # pelvis is identity: world == local
        rotations[:, knee] = rot.multiply(rot.inverse(solution.upper), solution.lower)
        rotations[:, ankle] = rot.inverse(solution.lower)  # keep the foot flat
    positions = kinematics.joint_positions(SKELETON, rotations, pelvis)
    return Walk(rotations, pelvis, positions, contacts)
