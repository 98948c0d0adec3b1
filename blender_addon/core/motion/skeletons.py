"""The model's 22-joint skeleton and where its legs are (names from the SMPL-H body).

The daemon sends its skeleton on the wire and takes carry it; this copy (the official wooden
body's rest joints, hymotion_spec.md Appendix B: metres, Y up, facing +Z, left = +X) is for
motion made without a daemon, such as a BVH used as a take.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..protocol import motion
from . import kinematics
from .transfer import RestPose, rest_pose_of

# fmt: off
MODEL_JOINTS: tuple[str, ...] = (
    "Pelvis", "L_Hip", "R_Hip", "Spine1", "L_Knee", "R_Knee", "Spine2", "L_Ankle", "R_Ankle",
    "Spine3", "L_Foot", "R_Foot", "Neck", "L_Collar", "R_Collar", "Head", "L_Shoulder",
    "R_Shoulder", "L_Elbow", "R_Elbow", "L_Wrist", "R_Wrist",
)
MODEL_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19)
MODEL_REST = (
    (-0.001795, -0.190827, 0.028219), (0.080577, -0.280765, 0.025117),
    (-0.080577, -0.280765, 0.025117), (0.0, -0.096641, 0.031726),
    (0.099836, -0.658082, 0.014663), (-0.097853, -0.658178, 0.014663),
    (0.0, 0.025981, 0.029185), (0.101074, -1.05622, -0.037459),
    (-0.096997, -1.056317, -0.037459), (0.0, 0.106241, 0.005012),
    (0.113632, -1.127859, 0.105247), (-0.109179, -1.128021, 0.105247),
    (0.0, 0.302071, -0.014954), (0.054692, 0.225074, -0.020233),
    (-0.054692, 0.225074, -0.020233), (0.0, 0.397715, -0.016454),
    (0.165353, 0.237455, -0.01686), (-0.165353, 0.237455, -0.01686),
    (0.433444, 0.249386, -0.029562), (-0.433444, 0.249386, -0.029562),
    (0.702487, 0.25342, -0.042731), (-0.702487, 0.25342, -0.042731),
)
# fmt: on

MODEL_SKELETON = motion.Skeleton(
    joint_names=MODEL_JOINTS,
    parents=np.array(MODEL_PARENTS, dtype=np.int32),
    rest_positions=np.array(MODEL_REST, dtype=np.float32),
)

#: How far the body reaches below a joint, for grounding without the mesh (metres): the same
#: rule as the daemon's joint grounding, so a BVH take stands on y = 0 like a generated one.
#: Ankles 0.105 m and toes 0.033 m are the rest distances from those joints to the sole.
SOLE_MARGINS_M = {"L_Ankle": 0.105, "R_Ankle": 0.105, "L_Foot": 0.033, "R_Foot": 0.033}
OTHER_MARGIN_M = 0.05


@dataclass(frozen=True)
class Legs:
    """Joint indices of both legs, (left, right) each."""

    hip: tuple[int, int]
    knee: tuple[int, int]
    ankle: tuple[int, int]
    toe: tuple[int, int]

    def chains(self) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        return (
            (self.hip[0], self.knee[0], self.ankle[0]),
            (self.hip[1], self.knee[1], self.ankle[1]),
        )


def model_legs(skeleton: motion.Skeleton) -> Legs:
    """The legs of a skeleton that uses the SMPL-H body joint names (the wire skeleton)."""

    def pair(left: str, right: str) -> tuple[int, int]:
        return kinematics.find_joint(skeleton, left), kinematics.find_joint(skeleton, right)

    return Legs(
        hip=pair("L_Hip", "R_Hip"),
        knee=pair("L_Knee", "R_Knee"),
        ankle=pair("L_Ankle", "R_Ankle"),
        toe=pair("L_Foot", "R_Foot"),
    )


def model_rest_pose(skeleton: motion.Skeleton = MODEL_SKELETON) -> RestPose:
    legs = model_legs(skeleton)
    return rest_pose_of(skeleton, legs.hip, legs.chains())


def sole_margins(skeleton: motion.Skeleton) -> np.ndarray:
    """(J,) metres below each joint that the body reaches (see ``SOLE_MARGINS_M``)."""
    return np.array([SOLE_MARGINS_M.get(n, OTHER_MARGIN_M) for n in skeleton.joint_names])


def ground_offset(skeleton: motion.Skeleton, joint_positions: np.ndarray) -> float:
    """Height (metres) to subtract so the clip's lowest point touches y = 0."""
    return float((joint_positions[..., 1] - sole_margins(skeleton)).min())
