"""The official wooden SMPL-H skeleton (spec Appendix B): 52 joints, the first 22 are the body."""

from __future__ import annotations

import numpy as np

from shared_protocol import Skeleton

BODY_JOINTS = 22

# fmt: off
JOINT_NAMES: tuple[str, ...] = (
    "Pelvis", "L_Hip", "R_Hip", "Spine1", "L_Knee", "R_Knee", "Spine2", "L_Ankle", "R_Ankle",
    "Spine3", "L_Foot", "R_Foot", "Neck", "L_Collar", "R_Collar", "Head", "L_Shoulder",
    "R_Shoulder", "L_Elbow", "R_Elbow", "L_Wrist", "R_Wrist",
    "L_Index1", "L_Index2", "L_Index3", "L_Middle1", "L_Middle2", "L_Middle3", "L_Pinky1",
    "L_Pinky2", "L_Pinky3", "L_Ring1", "L_Ring2", "L_Ring3", "L_Thumb1", "L_Thumb2", "L_Thumb3",
    "R_Index1", "R_Index2", "R_Index3", "R_Middle1", "R_Middle2", "R_Middle3", "R_Pinky1",
    "R_Pinky2", "R_Pinky3", "R_Ring1", "R_Ring2", "R_Ring3", "R_Thumb1", "R_Thumb2", "R_Thumb3",
)
PARENTS: tuple[int, ...] = (
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19,
    20, 22, 23, 20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35,
    21, 37, 38, 21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50,
)
# Rest joint positions in metres (j_template.bin, Y up, +Z forward, +X = character's left).
REST_POSITIONS = np.array([
    [-0.001795, -0.190827, 0.028219], [0.080577, -0.280765, 0.025117],
    [-0.080577, -0.280765, 0.025117], [0.000000, -0.096641, 0.031726],
    [0.099836, -0.658082, 0.014663], [-0.097853, -0.658178, 0.014663],
    [0.000000, 0.025981, 0.029185], [0.101074, -1.056220, -0.037459],
    [-0.096997, -1.056317, -0.037459], [0.000000, 0.106241, 0.005012],
    [0.113632, -1.127859, 0.105247], [-0.109179, -1.128021, 0.105247],
    [0.000000, 0.302071, -0.014954], [0.054692, 0.225074, -0.020233],
    [-0.054692, 0.225074, -0.020233], [0.000000, 0.397715, -0.016454],
    [0.165353, 0.237455, -0.016860], [-0.165353, 0.237455, -0.016860],
    [0.433444, 0.249386, -0.029562], [-0.433444, 0.249386, -0.029562],
    [0.702487, 0.253420, -0.042731], [-0.702487, 0.253420, -0.042731],
    [0.793083, 0.248877, -0.018903], [0.830029, 0.247158, -0.017299],
    [0.853162, 0.245987, -0.015810], [0.792052, 0.256181, -0.043913],
    [0.837987, 0.253326, -0.048933], [0.866210, 0.251337, -0.051860],
    [0.780663, 0.240626, -0.084645], [0.804688, 0.239067, -0.100030],
    [0.822082, 0.238234, -0.110835], [0.800299, 0.244670, -0.067041],
    [0.828133, 0.246314, -0.071414], [0.850795, 0.244926, -0.077890],
    [0.721261, 0.239180, -0.018623], [0.749870, 0.238761, 0.006131],
    [0.777649, 0.237540, 0.024963], [-0.793083, 0.248877, -0.018903],
    [-0.830029, 0.247158, -0.017299], [-0.852325, 0.245380, -0.015810],
    [-0.792052, 0.256181, -0.043913], [-0.837987, 0.253326, -0.048933],
    [-0.866210, 0.251337, -0.051860], [-0.780663, 0.240626, -0.084645],
    [-0.804688, 0.239067, -0.100030], [-0.822082, 0.238234, -0.110835],
    [-0.789702, 0.252655, -0.067865], [-0.828428, 0.248307, -0.077542],
    [-0.855647, 0.245277, -0.084593], [-0.721261, 0.239180, -0.018623],
    [-0.749870, 0.238761, 0.006131], [-0.777649, 0.237540, 0.024963],
], dtype=np.float32)
# fmt: on


def make_skeleton(joints: int = BODY_JOINTS, rest: np.ndarray | None = None) -> Skeleton:
    """The first ``joints`` joints (22 = body, 52 = with flat hands) as a shared Skeleton."""
    positions = REST_POSITIONS if rest is None else rest
    return Skeleton(
        joint_names=JOINT_NAMES[:joints],
        parents=np.array(PARENTS[:joints], dtype=np.int32),
        rest_positions=np.asarray(positions[:joints], dtype=np.float32),
    )


BODY_SKELETON = make_skeleton()
