"""Foot contacts and the foot-skate figure (numpy, no bpy).

Positions are world joint positions (F, J, 3), Y up, with the ground at y = 0 (takes are
grounded), at ``fps`` frames per second. Every threshold is for the model's body (leg length
``REFERENCE_LEG_M``) and scales with the leg length of the body being measured, so a child and
a tall adult are judged alike.

Contact, per ankle and per toe joint (landscape_2026-12 §3: Kimodo labels contacts at joint
speed < 0.15 m/s and height < 0.10 m; HumanML3D at < ~0.9 m/s with no height test):

- *enters* when the joint is slower than ``enter_speed`` (0.3 m/s) and lower than
  ``enter_height`` (0.05 m) above its planted height, *stays* while slower than
  ``exit_speed`` (1.0 m/s) and lower than ``exit_height`` (0.08 m): hysteresis, so a foot
  rolling over does not flicker;
- *glides*, when ``glide_speed`` is set (``GLIDE_SPEED``, 1.5 m/s; off by default): a foot
  that lands already sliding, lower than ``enter_height`` above its planted height, then
  staying lower than ``exit_height``, level (vertical speed under ``level_speed``, 0.15 m/s)
  and slower than ``glide_speed`` horizontally, for at least ``glide_frames`` (6) frames in a
  row: a swinging foot brushes the ground for a frame or two, rising or falling, at 2-4 m/s.
  Off by default because on clean capture it starts heel contacts at heel strike, while the
  heel still slows down, and locking them there stops the heel abruptly;
- runs shorter than ``min_frames`` (3) are dropped, gaps of one frame are closed.

The planted height of a joint is how far it sits above the sole when the foot is flat (rest
pose): 0.105 m for the model's ankles, 0.033 m for its toe joints.

Foot skate (Kimodo's metric): a toe moving faster than 0.2 m/s horizontally while its height is
under 0.05 m above its planted height. Reported over the judged toe-frames (the contact
frames, or all frames) as the fraction that skate and as the summed horizontal distance the
toes slide on them (metres).

Generated motion slides, so a foot this low may enter contact moving at up to 0.3 m/s and stay
in it up to 1 m/s (Kimodo's 0.15 m/s labels clean capture; a swinging foot near the ground
moves at 2–4 m/s); with the gliding rule, a foot that lands sliding faster is in contact
while it glides.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .skeletons import Legs

REFERENCE_LEG_M = 0.7793  # the model's rest hip→knee→ankle length
#: ``glide_speed`` of the gliding-contact rule when it is on (foot lock's "Always").
GLIDE_SPEED = 1.5
ANKLE_CLEARANCE_M = 0.105
TOE_CLEARANCE_M = 0.033


@dataclass(frozen=True)
class ContactThresholds:
    """Thresholds for the model's body; ``scaled`` adapts them to another leg length."""

    enter_speed: float = 0.3  # m/s
    exit_speed: float = 1.0
    enter_height: float = 0.05  # m above the planted height
    exit_height: float = 0.08
    min_frames: int = 3
    # A gliding contact (a foot that lands already sliding): low, level and slower than
    # ``glide_speed`` for ``glide_frames`` frames in a row; 0 (the default) turns the rule off.
    glide_speed: float = 0.0  # m/s, horizontal; GLIDE_SPEED turns it on
    level_speed: float = 0.15  # m/s, vertical
    glide_frames: int = 6
    skate_speed: float = 0.2  # m/s, horizontal
    skate_height: float = 0.05  # m above the planted height
    ankle_clearance: float = ANKLE_CLEARANCE_M
    toe_clearance: float = TOE_CLEARANCE_M

    def scaled(self, leg_length: float) -> ContactThresholds:
        k = leg_length / REFERENCE_LEG_M
        return ContactThresholds(
            enter_speed=self.enter_speed * k, exit_speed=self.exit_speed * k,
            enter_height=self.enter_height * k, exit_height=self.exit_height * k,
            min_frames=self.min_frames, glide_speed=self.glide_speed * k,
            level_speed=self.level_speed * k, glide_frames=self.glide_frames,
            skate_speed=self.skate_speed * k,
            skate_height=self.skate_height * k, ankle_clearance=self.ankle_clearance * k,
            toe_clearance=self.toe_clearance * k,
        )  # fmt: skip


@dataclass(frozen=True, eq=False)
class Contacts:
    """Per frame and leg (left, right): which joints touch the ground."""

    ankle: np.ndarray  # (F, 2) bool
    toe: np.ndarray  # (F, 2) bool

    @property
    def foot(self) -> np.ndarray:
        """(F, 2) bool: the foot touches the ground by its heel/ankle or its toes."""
        return self.ankle | self.toe

    @property
    def any(self) -> bool:
        return bool(self.foot.any())


def speeds(positions: np.ndarray, fps: float, horizontal: bool = False) -> np.ndarray:
    """(F, ...) speeds in units per second from (F, ..., 3) positions.

    A frame's speed is the smaller of its backward and forward differences, so the frame a foot
    lands on and the frame it lifts off from count as still (a central difference would blur
    half a frame of swing into each).
    """
    p = np.asarray(positions, dtype=np.float64)
    if horizontal:
        p = p[..., [0, 2]]
    if p.shape[0] < 2:
        return np.zeros(p.shape[:-1])
    step = np.linalg.norm(np.diff(p, axis=0), axis=-1) * fps  # (F-1, ...)
    backward = np.concatenate([step[:1], step], axis=0)
    forward = np.concatenate([step, step[-1:]], axis=0)
    return np.minimum(backward, forward)


def detect_contacts(
    joint_positions: np.ndarray,
    fps: float,
    legs: Legs,
    thresholds: ContactThresholds = ContactThresholds(),
) -> Contacts:
    """Contacts of the ankles and toes of ``joint_positions`` (F, J, 3), see module doc."""
    ankle = _joint_contacts(joint_positions[:, list(legs.ankle)], fps, thresholds.ankle_clearance,
                            thresholds)  # fmt: skip
    toe = _joint_contacts(joint_positions[:, list(legs.toe)], fps, thresholds.toe_clearance,
                          thresholds)  # fmt: skip
    return Contacts(ankle=ankle, toe=toe)


def _joint_contacts(
    positions: np.ndarray, fps: float, clearance: float, t: ContactThresholds
) -> np.ndarray:
    height = positions[..., 1] - clearance
    speed = speeds(positions, fps)
    low, lowish = height < t.enter_height, height < t.exit_height
    enter = (speed < t.enter_speed) & low
    state = _hysteresis(enter, ((speed < t.exit_speed) & lowish) | enter)
    if t.glide_speed > 0:
        # Gliding: level and slower than a swing, for long enough that a swing foot brushing
        # the ground (2-4 m/s, rising or falling) never qualifies.
        glide = (speeds(positions, fps, horizontal=True) < t.glide_speed) & (
            speeds(positions[..., 1:2], fps) < t.level_speed
        )
        gliding = _hysteresis(glide & low, glide & lowish)
        state |= np.stack([_drop_short(g, t.glide_frames) for g in gliding.T], axis=1)
    return np.stack([_clean_runs(s, t.min_frames) for s in state.T], axis=1)


def _hysteresis(enter: np.ndarray, stay: np.ndarray) -> np.ndarray:
    """(F, L) flags: within each unbroken run of ``stay`` frames, from the run's first
    ``enter`` frame to the run's end (no frame loop)."""
    frames = np.arange(stay.shape[0])
    state = np.zeros_like(stay)
    for leg in range(stay.shape[1]):
        run_id = np.cumsum(np.concatenate([[True], stay[1:, leg] != stay[:-1, leg]]))
        first_enter = np.full(run_id[-1] + 1, stay.shape[0])
        np.minimum.at(first_enter, run_id[enter[:, leg]], frames[enter[:, leg]])
        state[:, leg] = stay[:, leg] & (frames >= first_enter[run_id])
    return state


def _clean_runs(flags: np.ndarray, min_frames: int) -> np.ndarray:
    out = flags.copy()
    # close one-frame gaps, then drop short runs
    gap = ~out[1:-1] & out[:-2] & out[2:]
    out[1:-1] |= gap
    return _drop_short(out, min_frames)


def _drop_short(flags: np.ndarray, min_frames: int) -> np.ndarray:
    out = flags.copy()
    for start, end in runs(out):
        if end - start < min_frames:
            out[start:end] = False
    return out


def runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) frame ranges where ``flags`` (F,) is true."""
    padded = np.concatenate([[False], flags.astype(bool), [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


@dataclass(frozen=True)
class Skate:
    """Foot skate of a clip (see module doc)."""

    fraction: float  # skating toe-frames / judged toe-frames
    distance_m: float  # summed horizontal toe travel on skating frames
    frames: int  # skating toe-frames


def foot_skate(
    joint_positions: np.ndarray,
    fps: float,
    legs: Legs,
    thresholds: ContactThresholds = ContactThresholds(),
    during: np.ndarray | None = None,
) -> Skate:
    """Foot skate of ``joint_positions`` (F, J, 3) over the toe-frames ``during`` (F, 2)
    (left, right), e.g. known or detected contacts; None judges every frame."""
    toes = np.asarray(joint_positions, dtype=np.float64)[:, list(legs.toe)]  # (F, 2, 3)
    judged = np.ones(toes.shape[:2], dtype=bool) if during is None else np.asarray(during, bool)
    low = toes[..., 1] - thresholds.toe_clearance < thresholds.skate_height
    speed = speeds(toes, fps, horizontal=True)
    skating = judged & low & (speed > thresholds.skate_speed)
    count = int(judged.sum())
    return Skate(
        fraction=float(skating.sum() / count) if count else 0.0,
        distance_m=float((speed[skating] / fps).sum()),
        frames=int(skating.sum()),
    )
