"""BVH reading, and a humanoid BVH as a take on the model's 22-joint skeleton (no bpy).

Reading: CRLF, LF or mixed line endings, tabs, any rotation channel order per joint (Z-Y-X,
Z-X-Y, ...), End Sites (kept as channel-less leaf joints named ``<parent>_End``). BVH rest
frames are world-aligned, so a BVH joint's rotation is the wire convention already: root
global, others parent-relative. Position channels on joints other than the root are ignored.

"Use this BVH as a take": the BVH's joints are matched to the model's by a name table (CMU /
cgspeed, Daz, Mixamo, or the model's own SMPL-H names that the add-on's BVH export writes),
stood up in model axes if the file is Z up, its motion is transferred in world space onto the
model skeleton (``transfer``: change from rest per bone, limbs aimed from joint positions, travel
scaled by the leg-length ratio, so the BVH's units do not matter), resampled to 30 fps, and
grounded the way the daemon grounds its output. The result has the arrays a daemon ``Result``
carries.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..conversion import resample
from ..errors import BvhError
from ..protocol import messages, motion
from ..rig_conventions import MIXAMO, without_namespace
from . import kinematics
from . import rotations as rot
from .skeletons import MODEL_JOINTS, MODEL_SKELETON, ground_offset, model_rest_pose
from .transfer import Calibration, RestPose, calibrate, transfer

_ROTATION_CHANNELS = {"xrotation": "X", "yrotation": "Y", "zrotation": "Z"}
_POSITION_CHANNELS = {"xposition": 0, "yposition": 1, "zposition": 2}
#: Longest clip read (frames), so a corrupt header cannot ask for gigabytes.
MAX_BVH_FRAMES = 200_000


@dataclass(frozen=True, eq=False)
class BvhClip:
    """A parsed BVH: hierarchy plus per-frame channel values, in the file's own units/axes."""

    names: tuple[str, ...]
    parents: np.ndarray  # (J,) int, -1 for the root
    offsets: np.ndarray  # (J, 3) rest offset from the parent (root: its OFFSET)
    channels: tuple[tuple[str, ...], ...]  # per joint, lower-case channel names in file order
    values: np.ndarray  # (F, C) float64, every channel of every frame
    frame_time: float  # seconds

    @property
    def frames(self) -> int:
        return int(self.values.shape[0])

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time

    def skeleton(self) -> motion.Skeleton:
        rest = np.zeros_like(self.offsets)
        for joint, parent in enumerate(self.parents):
            rest[joint] = self.offsets[joint] + (rest[parent] if parent >= 0 else 0.0)
        return motion.Skeleton(
            joint_names=self.names,
            parents=self.parents.astype(np.int32),
            rest_positions=rest.astype(np.float32),
        )

    def rotations(self) -> np.ndarray:
        """(F, J, 4) quaternions (w, x, y, z), root global and the others local."""
        out = np.broadcast_to(rot.IDENTITY, (self.frames, len(self.names), 4)).copy()
        column = 0
        for joint, channels in enumerate(self.channels):
            order = "".join(_ROTATION_CHANNELS.get(c, "") for c in channels)
            columns = [column + i for i, c in enumerate(channels) if c in _ROTATION_CHANNELS]
            if order:
                out[:, joint] = rot.from_euler(np.radians(self.values[:, columns]), order)
            column += len(channels)
        return rot.make_continuous(out)

    def root_positions(self) -> np.ndarray:
        """(F, 3) root joint positions: its OFFSET plus its position channels."""
        out = np.broadcast_to(self.offsets[0], (self.frames, 3)).copy()
        for i, name in enumerate(self.channels[0]):
            if name in _POSITION_CHANNELS:
                out[:, _POSITION_CHANNELS[name]] += self.values[:, i]
        return out


def read_bvh(path: Path) -> BvhClip:
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise BvhError(f"cannot read {path}: {exc.strerror}", path=str(path)) from exc
    return parse_bvh(text, source=str(path))


def parse_bvh(text: str, source: str = "BVH") -> BvhClip:
    """Parse BVH text; a malformed file raises ``BvhError`` saying what is wrong where."""
    parts = re.split(r"^[ \t]*MOTION[ \t\r]*$", text, maxsplit=1, flags=re.M)
    if len(parts) != 2:
        raise BvhError(f"{source}: no MOTION section", path=source)
    head, body = parts
    hierarchy = _Hierarchy(head.split(), source)
    frames, frame_time, values = _motion(body, len(hierarchy.channel_names()), source)
    return BvhClip(
        names=tuple(hierarchy.names),
        parents=np.array(hierarchy.parents, dtype=np.int64),
        offsets=np.array(hierarchy.offsets, dtype=np.float64),
        channels=tuple(tuple(c) for c in hierarchy.channels),
        values=values.reshape(frames, -1),
        frame_time=frame_time,
    )


class _Hierarchy:
    """Recursive-descent reader of the HIERARCHY tokens."""

    def __init__(self, tokens: list[str], source: str) -> None:
        self.tokens, self.at, self.source = tokens, 0, source
        self.names: list[str] = []
        self.parents: list[int] = []
        self.offsets: list[list[float]] = []
        self.channels: list[list[str]] = []
        if not tokens or tokens[0].upper() != "HIERARCHY":
            self._fail("the file does not start with HIERARCHY")
        self.at = 1
        if self._next().upper() != "ROOT":
            self._fail("expected ROOT after HIERARCHY")
        self._joint(self._next(), -1)
        if self.at != len(tokens):
            self._fail(f"unexpected {tokens[self.at]!r} after the root joint")

    def channel_names(self) -> list[str]:
        return [c for joint in self.channels for c in joint]

    def _fail(self, what: str) -> None:
        raise BvhError(f"{self.source}: {what}", path=self.source)

    def _next(self) -> str:
        if self.at >= len(self.tokens):
            self._fail("the hierarchy ends early (missing '}'?)")
        token = self.tokens[self.at]
        self.at += 1
        return token

    def _number(self, what: str) -> float:
        token = self._next()
        try:
            return float(token)
        except ValueError:
            self._fail(f"{what}: {token!r} is not a number")
            raise  # unreachable

    def _add(self, name: str, parent: int) -> int:
        if name in self.names:
            name = f"{name}.{len(self.names)}"
        self.names.append(name)
        self.parents.append(parent)
        self.offsets.append([0.0, 0.0, 0.0])
        self.channels.append([])
        return len(self.names) - 1

    def _joint(self, name: str, parent: int) -> None:
        joint = self._add(name, parent)
        if self._next() != "{":
            self._fail(f"joint {name!r}: expected '{{'")
        while True:
            token = self._next()
            keyword = token.upper()
            if token == "}":
                return
            if keyword == "OFFSET":
                self.offsets[joint] = [self._number(f"joint {name!r} OFFSET") for _ in range(3)]
            elif keyword == "CHANNELS":
                count = int(self._number(f"joint {name!r} CHANNELS"))
                names = [self._next().lower() for _ in range(count)]
                unknown = [c for c in names if c not in _ROTATION_CHANNELS | _POSITION_CHANNELS]
                if unknown:
                    self._fail(f"joint {name!r}: unknown channel {unknown[0]!r}")
                self.channels[joint] = names
            elif keyword == "JOINT":
                self._joint(self._next(), joint)
            elif keyword == "END":
                self._next()  # "Site"
                self._end_site(f"{name}_End", joint)
            else:
                self._fail(f"joint {name!r}: unexpected {token!r}")

    def _end_site(self, name: str, parent: int) -> None:
        joint = self._add(name, parent)
        if self._next() != "{" or self._next().upper() != "OFFSET":
            self._fail(f"the End Site of {self.names[parent]!r}: expected '{{ OFFSET'")
        what = f"End Site of {self.names[parent]!r}"
        self.offsets[joint] = [self._number(what) for _ in range(3)]
        if self._next() != "}":
            self._fail(f"the End Site of {self.names[parent]!r}: expected '}}'")


def _motion(body: str, channel_count: int, source: str) -> tuple[int, float, np.ndarray]:
    match = re.match(r"\s*Frames\s*:\s*(\d+)\s+Frame\s+Time\s*:\s*(\S+)", body, flags=re.I)
    if match is None:
        raise BvhError(f"{source}: expected 'Frames:' and 'Frame Time:' after MOTION", path=source)
    frames = int(match.group(1))
    try:
        frame_time = float(match.group(2))
    except ValueError:
        raise BvhError(f"{source}: Frame Time {match.group(2)!r} is not a number") from None
    if not 0 < frame_time < 10:
        raise BvhError(f"{source}: Frame Time {frame_time} s is not usable", path=source)
    if not 0 < frames <= MAX_BVH_FRAMES:
        raise BvhError(f"{source}: {frames} frames (1 to {MAX_BVH_FRAMES} are read)", path=source)
    try:
        values = np.array(body[match.end() :].split(), dtype=np.float64)
    except ValueError as exc:
        raise BvhError(f"{source}: a frame holds a value that is not a number ({exc})") from None
    expected = frames * channel_count
    if values.size < expected:
        raise BvhError(
            f"{source}: {values.size} values for {frames} frames x {channel_count} channels",
            path=source,
        )
    values = values[:expected]  # some writers add a trailing line
    if not np.isfinite(values).all():
        raise BvhError(f"{source}: the motion holds non-finite values", path=source)
    return frames, frame_time, values


# ---------------------------------------------------------------------------------------------
# A humanoid BVH as a take on the model skeleton

#: Mixamo's names (rig_conventions.MIXAMO), lower case, in the model's joint order.
_MIXAMO = {joint: MIXAMO.joints[joint][0].lower() for joint in MODEL_JOINTS}
#: Model joint -> BVH joint name (lower case, prefix stripped), per naming convention.
NAME_TABLES: dict[str, dict[str, str]] = {
    # CMU (and cgspeed's conversions) name the body as Mixamo does, but for the spine
    "cmu": {**_MIXAMO, "Spine1": "lowerback", "Spine2": "spine", "Spine3": "spine1"},
    "daz": {
        "Pelvis": "hip", "L_Hip": "lthigh", "R_Hip": "rthigh", "Spine1": "abdomen",
        "L_Knee": "lshin", "R_Knee": "rshin", "L_Ankle": "lfoot", "R_Ankle": "rfoot",
        "Spine3": "chest", "L_Foot": "lfoot_end", "R_Foot": "rfoot_end", "Neck": "neck",
        "L_Collar": "lcollar", "R_Collar": "rcollar", "Head": "head", "L_Shoulder": "lshldr",
        "R_Shoulder": "rshldr", "L_Elbow": "lforearm", "R_Elbow": "rforearm",
        "L_Wrist": "lhand", "R_Wrist": "rhand",
    },
    "mixamo": _MIXAMO,
    # The model's own SMPL-H names: the BVH files this add-on exports, and SMPL tools' files.
    "model": {name: name.lower() for name in MODEL_JOINTS},
}  # fmt: skip
#: Joints a BVH must have to be used as a take.
REQUIRED_JOINTS = ("Pelvis", "L_Hip", "R_Hip", "L_Knee", "R_Knee", "L_Ankle", "R_Ankle", "Head")


def normalize_name(name: str) -> str:
    """Lower case, without a namespace/prefix such as ``mixamorig:`` or ``Armature|``."""
    return without_namespace(name).lower()


@dataclass(frozen=True)
class HumanoidMatch:
    convention: str
    mapping: dict[int, int]  # model joint -> BVH joint
    unmapped: tuple[str, ...]  # model joints no BVH joint drives (they follow their parent)


def match_humanoid(clip: BvhClip, model: motion.Skeleton = MODEL_SKELETON) -> HumanoidMatch:
    """Pick the name table matching most of the BVH's joints; refuse non-humanoids."""
    index = {normalize_name(n): i for i, n in enumerate(clip.names)}
    best: tuple[int, str, dict[int, int]] | None = None
    for convention, table in NAME_TABLES.items():
        mapping = {
            model.joint_names.index(m): index[b]
            for m, b in table.items()
            if m in model.joint_names and b in index
        }
        if best is None or len(mapping) > best[0]:
            best = (len(mapping), convention, mapping)
    assert best is not None
    _, convention, mapping = best
    missing = [j for j in REQUIRED_JOINTS if model.joint_names.index(j) not in mapping]
    if missing:
        raise BvhError(
            f"the BVH has no joint for the model's {missing[0]!r} (closest naming: "
            f"{convention}); joints found: {', '.join(clip.names[:12])}...",
            field=missing[0],
        )
    unmapped = tuple(n for j, n in enumerate(model.joint_names) if j not in mapping)
    return HumanoidMatch(convention, mapping, unmapped)


@dataclass(frozen=True, eq=False)
class BvhTake:
    """A BVH on the model skeleton: the arrays of one candidate of a daemon ``Result``."""

    skeleton: motion.Skeleton
    rotations: np.ndarray  # (F, 22, 4) float32, pelvis global, others local, (w, x, y, z)
    root_positions: np.ndarray  # (F, 3) float32 pelvis world position, metres, grounded
    joint_positions: np.ndarray  # (F, 22, 3) float32, metres
    fps: float
    convention: str  # which name table matched
    unmapped: tuple[str, ...]  # model joints that follow their parent
    skipped_tpose: bool  # the cgspeed T-pose frame 0 was left out
    source_frames: int
    source_fps: float


def is_tpose_frame(clip: BvhClip) -> bool:
    """cgspeed's added frame 0: root rotation zero, every angle a whole number of degrees, and
    not what frame 1 holds (captured motion is never all whole degrees)."""
    if clip.frames < 2:
        return False
    flat = [c for joint in clip.channels for c in joint]
    columns = [i for i, c in enumerate(flat) if c in _ROTATION_CHANNELS]
    root = [i for i, c in enumerate(clip.channels[0]) if c in _ROTATION_CHANNELS]
    first, second = clip.values[0, columns], clip.values[1, columns]
    return (
        bool(np.all(clip.values[0, root] == 0.0))
        and bool(np.all(first == np.round(first)))
        and not bool(np.all(second == np.round(second)))
    )


def up_correction(clip: BvhClip, match: HumanoidMatch) -> np.ndarray:
    """The rotation (w, x, y, z) that stands the BVH up in model axes (Y up): identity for a
    Y-up file; Z-up files (Blender's own BVH exporter writes Z up) are turned upright. The up
    axis is the rest direction from the hips to the head, rounded to the nearest axis."""
    rest = clip.skeleton().rest_positions.astype(np.float64)
    names = MODEL_JOINTS
    up = rest[match.mapping[names.index("Head")]] - rest[match.mapping[names.index("Pelvis")]]
    axis = int(np.argmax(np.abs(up)))
    direction = np.zeros(3)
    direction[axis] = np.sign(up[axis]) or 1.0
    return rot.between(direction, np.array([0.0, 1.0, 0.0]))


def bvh_calibration(
    clip: BvhClip,
    match: HumanoidMatch,
    model: motion.Skeleton = MODEL_SKELETON,
    up: np.ndarray | None = None,
) -> Calibration:
    """Calibrate the BVH's rest pose against the model's. BVH rest frames are world-aligned
    (identity rest rotations) in the file's axes; ``up`` (default :func:`up_correction`) turns
    them into model axes, so the rest rotations become ``up`` itself."""
    up = up_correction(clip, match) if up is None else up
    skeleton = clip.skeleton()
    m = match.mapping
    names = model.joint_names
    hips = (m[names.index("L_Hip")], m[names.index("R_Hip")])
    legs = tuple(
        (m[names.index(f"{s}_Hip")], m[names.index(f"{s}_Knee")], m[names.index(f"{s}_Ankle")])
        for s in "LR"
    )
    source = RestPose(
        names=skeleton.joint_names,
        parents=skeleton.parents.astype(np.int64),
        positions=rot.rotate(up, skeleton.rest_positions.astype(np.float64)),
        rotations=np.broadcast_to(up, (skeleton.joint_count, 4)).copy(),
        hips=hips,
        legs=legs,
    )
    return calibrate(source, model_rest_pose(model), m)


def bvh_to_take(
    clip: BvhClip,
    model: motion.Skeleton = MODEL_SKELETON,
    fps: float = motion.FPS,
    skip_tpose: bool | None = None,
) -> BvhTake:
    """Use a humanoid BVH as a take: transfer, resample to ``fps``, ground (see module doc).

    ``skip_tpose``: None leaves out frame 0 when :func:`is_tpose_frame` says it is cgspeed's.
    """
    match = match_humanoid(clip, model)
    skip = is_tpose_frame(clip) if skip_tpose is None else skip_tpose
    first = 1 if skip else 0
    if clip.frames - first < 2:
        raise BvhError("the BVH holds fewer than 2 frames of motion", field="frames")
    local = clip.rotations()[first:]
    root = clip.root_positions()[first:]
    local, root = resample(local, root, clip.fps, fps)
    skeleton = clip.skeleton()
    world = kinematics.world_rotations(local, skeleton.parents)
    positions = kinematics.positions_from_world(skeleton, world, root)
    up = up_correction(clip, match)  # model axes: Y up
    world, positions = rot.multiply(up, world), rot.rotate(up, positions)
    calibration = bvh_calibration(clip, match, model, up)
    moved = transfer(calibration, world, positions)
    lowest = ground_offset(model, moved.joint_positions)
    pelvis = moved.root_positions - np.array([0.0, lowest, 0.0])
    rotations = rot.make_continuous(moved.local_rotations)
    joints = kinematics.joint_positions(model, rotations, pelvis)
    return BvhTake(
        skeleton=model,
        rotations=rotations.astype(np.float32),
        root_positions=pelvis.astype(np.float32),
        joint_positions=joints.astype(np.float32),
        fps=float(fps),
        convention=match.convention,
        unmapped=match.unmapped,
        skipped_tpose=skip,
        source_frames=clip.frames,
        source_fps=clip.fps,
    )


def load_bvh_take(path: Path, model: motion.Skeleton = MODEL_SKELETON) -> BvhTake:
    """Read ``path`` and use it as a take on ``model`` (see :func:`bvh_to_take`)."""
    return bvh_to_take(read_bvh(path), model)


def joint_table(match: HumanoidMatch, clip: BvhClip, model: motion.Skeleton) -> Mapping[str, str]:
    """Model joint name -> BVH joint name, for messages and the panel."""
    return {model.joint_names[m]: clip.names[b] for m, b in match.mapping.items()}


def as_result(take: BvhTake, name: str) -> messages.Result:
    """A daemon ``Result`` holding the BVH take as its one candidate, so the add-on's takes
    history (apply, compare, finish, export) treats it like a generated take."""
    frames = int(take.rotations.shape[0])
    return messages.Result(
        job_id=f"bvh:{name}", model="bvh", model_label=f"BVH import ({take.convention} names)",
        untrained=False, prompt=name, frames=frames, fps=round(take.fps), seeds=(0,),
        guidance=0.0, steps=0, skeleton=take.skeleton, rotations=take.rotations[None],
        root_positions=take.root_positions[None], joint_positions=take.joint_positions[None],
    )  # fmt: skip
