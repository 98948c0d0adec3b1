"""Takes on the artist's own rig: retarget, write one Action per take and rig, play it (bpy side).

The rig is only ever given a new Action and has it assigned: its bones, constraints, other
actions and NLA tracks are left alone. An action the artist had playing gets a fake user first
so it survives saving. A take's rig action is written completely before anything is assigned,
so a failure leaves the rig as it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import bpy
import numpy as np

from . import build, rig_reader
from .build import IS_SLOTTED
from .core import bone_mapping, retarget
from .core.bone_mapping import BoneMapping
from .core.channels import Channel
from .core.protocol import motion
from .core.rig import same_skeleton
from .core.rig_channels import rig_channels
from .core.rig_conventions import limb_switches

#: Custom property on actions this add-on wrote for a rig: the take's name.
TAKE_KEY = "hy_motion_take"
#: Custom property on a rig object: its bone mapping as preset JSON (edited in the panel).
MAPPING_KEY = "hy_motion_bone_map"
#: Custom properties on a rig object: the artist's action (and slot) before the first take.
ARTIST_ACTION_KEY = "hy_motion_artist_action"
ARTIST_SLOT_KEY = "hy_motion_artist_slot"


@dataclass(frozen=True, eq=False)
class Motion:
    """One take in model space, as ``build.read_motion`` reads it."""

    name: str
    skeleton: motion.Skeleton
    rotations: np.ndarray  # (F, J, 4) wire convention
    root_positions: np.ndarray  # (F, 3) metres, model axes
    fps: float
    anchor_frame: int | None = None  # see ``retarget.TakeMotion``


def rig_mapping(obj: bpy.types.Object) -> BoneMapping:
    """The rig's mapping: the one saved on it (from the panel or a preset), else automatic.
    Validated against the rig as it is now."""
    rig = rig_reader.rig_bones(obj)
    saved = obj.get(MAPPING_KEY)  # type: ignore[func-returns-value]
    if isinstance(saved, str) and saved:
        mapping = bone_mapping.mapping_from_preset(saved, rig, f"the mapping saved on {obj.name!r}")
    else:
        mapping = bone_mapping.auto_mapping(rig)
    bone_mapping.validate(mapping, rig, repr(obj.name))
    return mapping


def rig_mapping_unchecked(obj: bpy.types.Object) -> BoneMapping:
    """The mapping saved on the rig as it stands (perhaps half-edited), else automatic."""
    saved = obj.get(MAPPING_KEY)  # type: ignore[func-returns-value]
    if isinstance(saved, str) and saved:
        return bone_mapping.parse_preset(saved, f"the mapping saved on {obj.name!r}")
    return bone_mapping.auto_mapping(rig_reader.rig_bones(obj))


def action_name(take_name: str, rig_name: str) -> str:
    return f"HYM {take_name} @ {rig_name}"


class RigWriter:
    """One rig made ready for takes: its mapping, the artist's animated bones and the rest
    calibration per model skeleton are worked out once; :meth:`action` then makes one take's
    Action (retarget and bulk write, nothing left behind if it fails). The unit of the panel's
    incremental work: one call is one take's write."""

    def __init__(
        self,
        obj: bpy.types.Object,
        options: retarget.RetargetOptions,
        mapping: BoneMapping | None = None,
    ) -> None:
        self.obj, self.options = obj, options
        self.mapping = mapping or rig_mapping(obj)
        self._rig = rig_reader.rig_bones(obj)
        pose = build.pose_bones(obj)
        self._modes = {b.name: b.rotation_mode for b in pose}
        ik = options.ik_limbs and options.key_ik
        self._switches = limb_switches(self.mapping.switches, ik,
                                       lambda b, p: _has_property(pose, b, p))  # fmt: skip
        self._animated = animated_bones(obj)
        self._plans: list[retarget.RigPlan] = []

    def plan(self, skeleton: motion.Skeleton) -> retarget.RigPlan:
        """The rig calibrated against ``skeleton`` (once per skeleton)."""
        for known in self._plans:
            if same_skeleton(known.model, skeleton):
                return known
        made = retarget.plan(skeleton, self._rig, self.mapping)
        self._plans.append(made)
        return made

    def action(self, m: Motion) -> bpy.types.Action:
        """A new Action of take ``m`` on the rig (not assigned)."""
        plan = self.plan(m.skeleton)
        return self.write(m.name, self.channels(plan, self.retarget_take(plan, m)))

    def retarget_take(self, plan: retarget.RigPlan, m: Motion) -> retarget.RigTake:
        motion_in = retarget.TakeMotion(m.rotations, m.root_positions, m.fps, m.anchor_frame)
        (take,) = retarget.retarget_takes(plan, [motion_in], self.options)
        return take

    def channels(self, plan: retarget.RigPlan, take: retarget.RigTake) -> list[Channel]:
        # Fingers the artist animates keep their keys (NLA, their action): no relaxed pose.
        skip = frozenset(set(plan.fingers) & self._animated)
        return rig_channels(take, self._modes, self._switches, skip=skip)

    def write(self, take_name: str, channels: list[Channel]) -> bpy.types.Action:
        action = build.write_action(action_name(take_name, self.obj.name), channels)
        action[TAKE_KEY] = take_name
        return action


def retarget_actions(
    obj: bpy.types.Object,
    motions: Sequence[Motion],
    options: retarget.RetargetOptions,
    mapping: BoneMapping | None = None,
) -> list[bpy.types.Action]:
    """One new Action per motion for rig ``obj`` (not assigned); all or none are created."""
    writer = RigWriter(obj, options, mapping)
    actions: list[bpy.types.Action] = []
    try:
        for m in motions:
            actions.append(writer.action(m))
    except BaseException:
        for action in actions:
            bpy.data.actions.remove(action)
        raise
    return actions


def _has_property(
    pose: bpy.types.bpy_prop_collection[bpy.types.PoseBone], bone: str, prop: str
) -> bool:
    # A custom property of the pose bone (the 4.2 stubs type ``in`` on it as unsupported).
    return bone in pose and prop in pose[bone]  # type: ignore[operator,unused-ignore]


def animated_bones(obj: bpy.types.Object) -> set[str]:
    """Bones the artist animates on ``obj``: keyed in its own action (the one before the first
    take, or the active one if it is not a take) or in any NLA strip's action."""
    anim = obj.animation_data
    if anim is None:
        return set()
    previous = obj.get(ARTIST_ACTION_KEY)  # type: ignore[func-returns-value]
    actions = [previous] if isinstance(previous, bpy.types.Action) else []
    active = anim.action
    # The 4.2 stubs type ID.get as returning None; it returns the custom property.
    if active is not None and active.get(TAKE_KEY) is None:  # type: ignore[func-returns-value]
        actions.append(active)
    actions += [s.action for t in anim.nla_tracks for s in t.strips if s.action is not None]
    bones = set()
    for action in actions:
        for path in _data_paths(action):
            if path.startswith('pose.bones["'):
                bones.add(path.split('"')[1])
    return bones


def _data_paths(action: bpy.types.Action) -> list[str]:
    if not IS_SLOTTED:
        return [c.data_path for c in action.fcurves]
    paths = []
    for layer in action.layers:
        for strip in layer.strips:
            if isinstance(strip, bpy.types.ActionKeyframeStrip):
                for bag in strip.channelbags:
                    paths += [c.data_path for c in bag.fcurves]
    return paths


def play(obj: bpy.types.Object, action: bpy.types.Action) -> None:
    """Make ``action`` the rig's active action, keeping the artist's current one safe (a fake
    user, and remembered on the rig for :func:`give_back`)."""
    anim = obj.animation_data
    previous = anim.action if anim is not None else None
    # The 4.2 stubs type ID.get as returning None; it returns the custom property.
    ours = previous is not None and previous.get(TAKE_KEY) is not None  # type: ignore[func-returns-value]
    if anim is not None and previous is not None and not ours:
        previous.use_fake_user = True
        obj[ARTIST_ACTION_KEY] = previous
        obj[ARTIST_SLOT_KEY] = ""
        if IS_SLOTTED and anim.action_slot is not None:
            obj[ARTIST_SLOT_KEY] = anim.action_slot.identifier
    build.assign_action(obj, action)


def give_back(obj: bpy.types.Object) -> None:
    """Play the artist's own action again (the one before the first take), or none."""
    anim = obj.animation_data
    if anim is None:
        return
    previous = obj.get(ARTIST_ACTION_KEY)  # type: ignore[func-returns-value]
    anim.action = previous if isinstance(previous, bpy.types.Action) else None
    identifier = obj.get(ARTIST_SLOT_KEY)  # type: ignore[func-returns-value]
    if IS_SLOTTED and anim.action is not None and identifier:
        slot = anim.action.slots.get(identifier)
        if slot is not None:
            anim.action_slot = slot
