"""Directed generation (protocol 1.1): what a generate request may hold the motion to.

All positions and rotations are in model space where the character stands in the scene (the
conventions of ``Result``): Y up, metres, quaternions (w, x, y, z) with joint 0 global, pelvis
world positions with the floor at y = 0. Frame indexes count from the clip's first frame; with a
timeline they count over the whole joined clip.

- poses: full-body poses at frames. Poses on frames 0 … P−1 are a *prefix* (continue from a
  take's end or the current pose); a pose on a later frame is a *key* (land on it, or fill the
  gap between two keys).
- path: ground-plane pelvis positions (x, z) at frames, optionally with a heading (yaw about +Y
  from +Z, radians) as a third column.
- loop: the last frame is followed by the first (pose and velocity); the ground position may
  advance (a walk cycle) but the character does not turn.
- timeline: further prompts after the request's own, each continuing the previous one's end.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import numpy as np

from .errors import InvalidArgument
from .motion import FPS, frames_for_duration

#: Largest | |q| − 1 | accepted for a pose rotation.
UNIT_TOLERANCE = 1e-3
#: Two poses closer than this (metres / quaternion components) are the same pose.
SAME_POSE_TOLERANCE = 1e-3
#: Frames of the previous segment each timeline segment is conditioned on (0.5 s).
TIMELINE_OVERLAP_FRAMES = 15
MAX_TIMELINE_ROWS = 32
FIELD = "constraints"


@dataclass(frozen=True)
class TimelineRow:
    prompt: str
    duration_s: float


@dataclass(frozen=True, eq=False)
class Constraints:
    """Optional parts of a generate request; every one may be combined with the others."""

    #: (K,) int32 strictly increasing frame indexes of the given poses.
    pose_frames: np.ndarray | None = None
    #: (K, J, 4) float32 unit quaternions (w, x, y, z), joint 0 global.
    pose_rotations: np.ndarray | None = None
    #: (K, 3) float32 pelvis world positions, metres.
    pose_root_positions: np.ndarray | None = None
    #: (N,) int32 strictly increasing frame indexes of path points.
    path_frames: np.ndarray | None = None
    #: (N, 2) float32 pelvis (x, z), or (N, 3) with the heading in radians as third column.
    path_points: np.ndarray | None = None
    loop: bool = False
    timeline: tuple[TimelineRow, ...] = ()
    #: Clean-up after sampling so constrained frames are met exactly (to float precision).
    exact: bool = True
    #: Flow time (0.5–1) after which the sampler stops imposing; 1 imposes to the end.
    impose_until: float = 1.0

    @property
    def has_poses(self) -> bool:
        return self.pose_frames is not None and len(self.pose_frames) > 0

    @property
    def has_path(self) -> bool:
        return self.path_frames is not None and len(self.path_frames) > 0

    @property
    def has_heading(self) -> bool:
        return self.has_path and self.path_points is not None and self.path_points.shape[1] == 3

    def total_frames(self, first_frames: int) -> int:
        """Frames of the joined clip whose first segment has ``first_frames``."""
        return first_frames + sum(frames_for_duration(r.duration_s) for r in self.timeline)

    def validate(
        self,
        first_frames: int,
        joints: int,
        max_segment_s: float,
        max_total_s: float,
        max_prompt_chars: int,
    ) -> None:
        """InvalidArgument naming the first bad field (``constraints.<name>``)."""
        self._validate_timeline(first_frames, max_segment_s, max_total_s, max_prompt_chars)
        frames = self.total_frames(first_frames)
        pose_given = [
            a is not None for a in (self.pose_frames, self.pose_rotations, self.pose_root_positions)
        ]
        if any(pose_given) and not all(pose_given):
            raise InvalidArgument(
                f"{FIELD}.pose_frames",
                "pose_frames, pose_rotations and pose_root_positions come together",
                allowed="all three arrays or none",
            )
        if all(pose_given):
            count = _frames("pose_frames", self.pose_frames, frames)
            rotations = _floats("pose_rotations", self.pose_rotations, (count, joints, 4))
            _floats("pose_root_positions", self.pose_root_positions, (count, 3))
            norms = np.linalg.norm(rotations.astype(np.float64), axis=-1)
            worst = float(np.abs(norms - 1.0).max()) if norms.size else 0.0
            if worst > UNIT_TOLERANCE:
                raise InvalidArgument(
                    f"{FIELD}.pose_rotations",
                    f"pose rotations must be unit quaternions; one has norm off by {worst:.3g}",
                    allowed=f"| |q| - 1 | <= {UNIT_TOLERANCE:g}",
                )
        if (self.path_frames is None) != (self.path_points is None):
            raise InvalidArgument(
                f"{FIELD}.path_frames",
                "path_frames and path_points come together",
                allowed="both arrays or neither",
            )
        if self.path_frames is not None and self.path_points is not None:
            count = _frames("path_frames", self.path_frames, frames)
            columns = self.path_points.shape[1] if self.path_points.ndim == 2 else 0
            _floats("path_points", self.path_points, (count, 3 if columns == 3 else 2))
        self._validate_agreement(frames)
        if not 0.5 <= self.impose_until <= 1.0:
            raise InvalidArgument(
                f"{FIELD}.impose_until",
                f"impose_until {self.impose_until:g} is outside 0.5 to 1",
                allowed="0.5-1",
            )

    def _validate_timeline(
        self, first_frames: int, max_segment_s: float, max_total_s: float, max_chars: int
    ) -> None:
        if len(self.timeline) > MAX_TIMELINE_ROWS:
            raise InvalidArgument(
                f"{FIELD}.timeline",
                f"{len(self.timeline)} timeline rows, more than {MAX_TIMELINE_ROWS}",
                allowed=f"0-{MAX_TIMELINE_ROWS} rows",
            )
        longest = max_segment_s - TIMELINE_OVERLAP_FRAMES / FPS
        for i, row in enumerate(self.timeline):
            name = f"{FIELD}.timeline[{i}]"
            prompt = row.prompt.strip()
            if not prompt or len(prompt) > max_chars:
                raise InvalidArgument(
                    f"{name}.prompt",
                    f"timeline row {i} has a prompt of {len(prompt)} characters",
                    allowed=f"1 to {max_chars} characters",
                )
            if any(unicodedata.category(c) == "Cc" and c not in "\n\t" for c in prompt):
                raise InvalidArgument(
                    f"{name}.prompt", "the prompt contains control characters", allowed="text"
                )
            seconds = row.duration_s
            if not (np.isfinite(seconds) and 1.0 <= seconds <= longest):
                raise InvalidArgument(
                    f"{name}.duration_s",
                    f"timeline row {i} lasts {seconds:g} s; a row continues the previous one "
                    f"from its last {TIMELINE_OVERLAP_FRAMES} frames, so it lasts 1 to "
                    f"{longest:g} s",
                    allowed=f"1-{longest:g} s",
                )
        total_s = self.total_frames(first_frames) / FPS
        if self.timeline and total_s > max_total_s + 1e-9:
            raise InvalidArgument(
                f"{FIELD}.timeline",
                f"the timeline lasts {total_s:g} s in all, more than {max_total_s:g} s",
                allowed=f"at most {max_total_s:g} s in all",
            )
        if self.timeline and self.loop:
            raise InvalidArgument(
                f"{FIELD}.loop",
                "a timeline cannot loop; generate the loop as one clip of up to "
                f"{max_segment_s:g} s",
                allowed="loop or timeline",
            )

    def _validate_agreement(self, frames: int) -> None:
        """Contradictions between constraints that are each valid alone."""
        if not self.has_poses:
            return
        assert self.pose_frames is not None and self.pose_rotations is not None
        assert self.pose_root_positions is not None
        index = {int(f): k for k, f in enumerate(self.pose_frames)}
        if self.loop and 0 in index and frames - 1 in index:
            first, last = index[0], index[frames - 1]
            if not _same_pose(
                self.pose_rotations[first],
                self.pose_rotations[last],
                self.pose_root_positions[first],
                self.pose_root_positions[last],
            ):
                raise InvalidArgument(
                    f"{FIELD}.loop",
                    f"a loop joins frame {frames - 1} to frame 0, but different poses are "
                    "given for them; give one of them, or the same pose",
                    allowed="loop with at most one of the first and last poses",
                )
        if self.has_path:
            assert self.path_frames is not None and self.path_points is not None
            for n, f in enumerate(self.path_frames):
                k = index.get(int(f))
                if k is None:
                    continue
                ground = self.pose_root_positions[k][[0, 2]].astype(np.float64)
                if np.abs(ground - self.path_points[n, :2]).max() > SAME_POSE_TOLERANCE:
                    raise InvalidArgument(
                        f"{FIELD}.path_points",
                        f"frame {int(f)} has a pose and a path point in different places",
                        allowed="a path point on a posed frame equal to the pose's (x, z)",
                    )


def _frames(name: str, value: np.ndarray | None, frames: int) -> int:
    field = f"{FIELD}.{name}"
    if value is None or value.ndim != 1 or value.dtype.kind not in "iu":
        raise InvalidArgument(field, f"{name} must be a 1-D integer array", allowed="(K,) int32")
    if value.size == 0:
        raise InvalidArgument(field, f"{name} is empty", allowed="1 or more frames")
    low, high = int(value.min()), int(value.max())
    if low < 0 or high >= frames:
        bad = low if low < 0 else high
        raise InvalidArgument(
            field,
            f"frame {bad} is outside the clip (frames 0 to {frames - 1})",
            allowed=f"0-{frames - 1}",
        )
    if value.size > 1 and not (np.diff(value) > 0).all():
        raise InvalidArgument(
            field, f"{name} must be strictly increasing", allowed="sorted, no repeats"
        )
    return int(value.size)


def _floats(name: str, value: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    field = f"{FIELD}.{name}"
    if value is None or value.dtype.kind != "f" or value.shape != shape:
        got = "nothing" if value is None else f"{value.dtype.name} {value.shape}"
        raise InvalidArgument(field, f"{name} must be float {shape}, got {got}", allowed=str(shape))
    if not np.isfinite(value).all():
        raise InvalidArgument(field, f"{name} holds NaN or infinite values", allowed="finite")
    return value


def _same_pose(
    rot_a: np.ndarray, rot_b: np.ndarray, root_a: np.ndarray, root_b: np.ndarray
) -> bool:
    dots = np.abs((rot_a.astype(np.float64) * rot_b).sum(-1))  # q and −q are one rotation
    return bool(
        np.abs(dots - 1.0).max() < SAME_POSE_TOLERANCE
        and np.abs(root_a.astype(np.float64) - root_b).max() < SAME_POSE_TOLERANCE
    )
