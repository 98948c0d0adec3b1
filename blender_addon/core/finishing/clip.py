"""The motion a finishing step works on: one take on its skeleton (wire conventions)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..motion import kinematics
from ..motion.skeletons import Legs, model_legs
from ..protocol import motion


@dataclass(frozen=True, eq=False)
class Clip:
    """rotations (F, J, 4) (w, x, y, z), pelvis global, others local; root_positions (F, 3)
    pelvis world position in metres, Y up, ground at y = 0; ``fps`` frames per second."""

    skeleton: motion.Skeleton
    rotations: np.ndarray
    root_positions: np.ndarray
    fps: float

    @property
    def frames(self) -> int:
        return int(self.rotations.shape[0])

    @property
    def legs(self) -> Legs:
        return model_legs(self.skeleton)

    def joint_positions(self) -> np.ndarray:
        return kinematics.joint_positions(self.skeleton, self.rotations, self.root_positions)

    def with_motion(self, rotations: np.ndarray, root_positions: np.ndarray) -> Clip:
        return replace(self, rotations=rotations, root_positions=root_positions)

    def frames_slice(self, start: int, stop: int) -> Clip:
        return self.with_motion(self.rotations[start:stop].copy(),
                                self.root_positions[start:stop].copy())  # fmt: skip


def as_clip(
    skeleton: motion.Skeleton, rotations: np.ndarray, root_positions: np.ndarray, fps: float
) -> Clip:
    """A float64 copy to work on (the caller's arrays are never modified)."""
    return Clip(skeleton, np.array(rotations, dtype=np.float64),
                np.array(root_positions, dtype=np.float64), float(fps))  # fmt: skip


def smoothstep(x: np.ndarray) -> np.ndarray:
    """3x² − 2x³ on [0, 1]: a blend weight with zero slope at both ends."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)
