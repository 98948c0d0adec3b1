"""Armature and Action writer: the bpy side of scene building.

Portable over 4.2 (legacy ``action.fcurves``) and 4.4+ (slotted actions). On 4.4+ a slot is
always created and assigned explicitly: auto-assignment silently picks no slot for a reused
action, and nothing animates (blender_notes §2.2).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import bpy
import numpy as np
import numpy.typing as npt

from .core import rig
from .core.channels import Channel, bone_path, pose_channels
from .core.conversion import PoseChannels, model_to_pose, pose_to_model
from .core.errors import SceneError
from .core.motion import root as root_motion
from .core.motion.root import ROOT_BONE
from .core.protocol import motion

IS_SLOTTED = bpy.app.version >= (4, 4, 0)
SKELETON_KEY = "hy_motion_skeleton"  # armature data custom property: the exact skeleton JSON
SLOT_NAME = "HY-Motion"
#: Armature data custom property: its Pelvis hangs from a root bone ``ROOT_BONE`` on the ground
#: that carries the travel (finishing's *Root bone*); without it the Pelvis is the top bone.
ROOT_KEY = "hy_motion_root_bone"
#: The root bone lies on the ground at the origin, pointing forward (Blender -Y), Z up.
ROOT_TAIL = (0.0, -0.2, 0.0)
# The integer foreach_set("interpolation") takes for LINEAR. The property is an EnumProperty;
# the stubs type bl_rna.properties items as the base Property, without enum_items.
_LINEAR = bpy.types.Keyframe.bl_rna.properties["interpolation"].enum_items["LINEAR"].value  # type: ignore[attr-defined]


@contextlib.contextmanager
def object_context(
    obj: bpy.types.Object, others: Sequence[bpy.types.Object] = ()
) -> Iterator[None]:
    """Context for object operators on ``obj`` (``others`` selected too): works from timers (no
    window) and headless."""
    context = bpy.context
    selected = [obj, *others]
    override: dict[str, Any] = {
        "active_object": obj,
        "object": obj,
        "selected_objects": selected,
        "selected_editable_objects": selected,
    }
    if context.window is None and context.window_manager and context.window_manager.windows:
        override["window"] = context.window_manager.windows[0]
    # fake-bpy-module-5.2 types temp_override()'s result without __enter__/__exit__.
    with context.temp_override(**override):  # type: ignore[attr-defined,unused-ignore]
        yield


def build_armature(
    scene: bpy.types.Scene,
    skeleton: motion.Skeleton,
    name: str = "HY-Motion",
    root_bone: bool = False,
) -> bpy.types.Object:
    """A new armature object from the skeleton on the wire, linked to ``scene``; with
    ``root_bone`` its Pelvis hangs from a root bone at the origin (``ROOT_BONE``)."""
    layout = rig.rig_layout(skeleton)
    if root_bone and ROOT_BONE in layout.names:
        raise SceneError(f"the skeleton already has a joint named {ROOT_BONE!r}", field="root_bone")
    data = bpy.data.armatures.new(name)
    data[SKELETON_KEY] = rig.skeleton_to_json(skeleton)
    data[ROOT_KEY] = root_bone
    obj = bpy.data.objects.new(name, data)
    scene.collection.objects.link(obj)
    view_layer = bpy.context.view_layer or scene.view_layers[0]
    if view_layer.objects.active is not None and view_layer.objects.active.mode != "OBJECT":
        with object_context(view_layer.objects.active):
            bpy.ops.object.mode_set(mode="OBJECT")
    view_layer.objects.active = obj
    with object_context(obj):
        bpy.ops.object.mode_set(mode="EDIT")
        try:
            _add_bones(data, layout, root_bone)
        finally:
            bpy.ops.object.mode_set(mode="OBJECT")
    for pose_bone in pose_bones(obj):
        pose_bone.rotation_mode = "QUATERNION"
    return obj


def _add_bones(data: bpy.types.Armature, layout: rig.RigLayout, root_bone: bool) -> None:
    # One EDIT-mode pass; EditBones are only referenced inside it (names afterwards).
    root = None
    if root_bone:
        root = data.edit_bones.new(ROOT_BONE)
        root.head, root.tail = (0.0, 0.0, 0.0), ROOT_TAIL
        root.align_roll(rig.UP.tolist())
    bones = []
    for joint, name in enumerate(layout.names):
        bone = data.edit_bones.new(name)
        bone.head = layout.heads[joint].tolist()
        bone.tail = layout.tails[joint].tolist()
        bone.align_roll(layout.roll_targets[joint].tolist())
        bone.use_connect = False
        bones.append(bone)
    for joint, parent in enumerate(layout.parents):
        if parent >= 0:
            bones[joint].parent = bones[int(parent)]
        elif root is not None:
            bones[joint].parent = root


def armature_data(obj: bpy.types.Object) -> bpy.types.Armature:
    if not isinstance(obj.data, bpy.types.Armature):
        raise SceneError(f"object {obj.name!r} is not an armature")
    return obj.data


def pose_bones(obj: bpy.types.Object) -> bpy.types.bpy_prop_collection[bpy.types.PoseBone]:
    if obj.pose is None:
        raise SceneError(f"object {obj.name!r} has no pose (not an armature)")
    return obj.pose.bones


def armature_skeleton(data: bpy.types.Armature) -> motion.Skeleton:
    # The 4.2 stubs type ID.get as returning None; it returns the custom property.
    text = data.get(SKELETON_KEY)  # type: ignore[func-returns-value]
    if not isinstance(text, str):
        raise SceneError(f"armature {data.name!r} was not built by HY-Motion")
    return rig.skeleton_from_json(text)


def has_root_bone(data: bpy.types.Armature) -> bool:
    """Whether ``data`` carries its takes' travel on a root bone (``build_armature``)."""
    return bool(data.get(ROOT_KEY)) and ROOT_BONE in data.bones  # type: ignore[func-returns-value]


def rest_frame(data: bpy.types.Armature, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Rest matrices (J, 3, 3) in joint order and the root's rest head (3,), armature space."""
    # Index by name: armature.bones is depth-first, not creation order.
    matrices = np.array([np.array(data.bones[n].matrix_local)[:3, :3] for n in names])
    return matrices, np.array(data.bones[names[0]].head_local, dtype=np.float64)


def motion_to_channels(
    data: bpy.types.Armature,
    skeleton: motion.Skeleton,
    rotations: np.ndarray,
    root_positions: np.ndarray,
    frame_start: int = 1,
) -> list[Channel]:
    matrices, root_head = rest_frame(data, skeleton.joint_names)
    if not has_root_bone(data):
        pose = model_to_pose(rotations, root_positions, matrices, root_head)
        return pose_channels(skeleton.joint_names, pose, frame_start)
    # The root bone takes the ground travel and heading; the Pelvis keys its motion relative
    # to the root, converted exactly as a top bone's (the root's frame is its world).
    split = root_motion.extract_root_motion(rotations, root_positions)
    body = np.array(rotations, dtype=np.float64)
    body[:, 0] = split.pelvis_rotations
    pose = model_to_pose(body, split.pelvis_positions, matrices, root_head)
    root_pose = model_to_pose(split.root_rotations[:, None], split.root_positions,
                              _root_rest(data)[None], np.zeros(3))  # fmt: skip
    return [*pose_channels((ROOT_BONE,), root_pose, frame_start),
            *pose_channels(skeleton.joint_names, pose, frame_start)]  # fmt: skip


def _root_rest(data: bpy.types.Armature) -> np.ndarray:
    return np.array(data.bones[ROOT_BONE].matrix_local)[:3, :3]


def to_model(
    data: bpy.types.Armature,
    names: Sequence[str],
    channels: PoseChannels,
    root_channels: PoseChannels | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Model-space (rotations (F, J, 4), pelvis positions (F, 3)) from the pose channels of
    the skeleton's bones and, on an armature with a root bone, of the root bone."""
    matrices, root_head = rest_frame(data, names)
    rotations, pelvis = pose_to_model(channels, matrices, root_head)
    if root_channels is None:
        return rotations, pelvis
    root_rotations, ground = pose_to_model(root_channels, _root_rest(data)[None], np.zeros(3))
    world, pelvis = root_motion.compose_root_motion(root_rotations[:, 0], ground,
                                                    rotations[:, 0], pelvis)  # fmt: skip
    rotations[:, 0] = world
    return rotations, pelvis


def write_action(name: str, channels: Sequence[Channel]) -> bpy.types.Action:
    """A new Action holding ``channels``, written in bulk; none is left if writing fails."""
    action = bpy.data.actions.new(name)
    action.use_fake_user = True  # takes not on any armature must survive save and reload
    try:
        _write_curves(action, channels)
    except BaseException:
        bpy.data.actions.remove(action)
        raise
    return action


def _write_curves(action: bpy.types.Action, channels: Sequence[Channel]) -> None:
    # mypy checks each IS_SLOTTED branch against the stubs of the versions it runs on
    # (tests/addon/run_mypy.sh: --always-false IS_SLOTTED for 4.2, --always-true for 4.5/5.0).
    if IS_SLOTTED:
        bag = _new_channelbag(action)
        if hasattr(bag.fcurves, "new_from_fcurve"):  # Blender 5.0+
            write_copied_curves(bag, channels)
        else:
            write_new_curves(bag, channels)
    else:
        action.id_root = "OBJECT"
        _write_legacy_curves(action, channels)


# The legacy writer (before 4.4), checked against the 4.2 stubs only (``action.fcurves`` is gone
# from 5.0).
if not IS_SLOTTED:

    def _write_legacy_curves(action: bpy.types.Action, channels: Sequence[Channel]) -> None:
        """One new curve per channel in ``action`` itself, grouped by bone."""
        for channel in channels:
            curve = action.fcurves.new(channel.data_path, index=channel.index,
                                       action_group=channel.group)  # fmt: skip
            fill_curve(curve, channel.co)


def fill_curve(curve: bpy.types.FCurve, co: np.ndarray) -> None:
    """Replace ``curve``'s keys with (frame, value) pairs ``co`` (2·N,), linear, in bulk."""
    count = co.size // 2
    points = curve.keyframe_points
    if len(points):
        points.clear()
    points.add(count)
    points.foreach_set("co", co)
    points.foreach_set("interpolation", np.full(count, _LINEAR, dtype=np.int32))
    curve.update()


# The slotted-action writers (4.4+). mypy checks them against the slotted stubs only
# (--always-false IS_SLOTTED for 4.2, where these types do not exist).
if IS_SLOTTED:

    def _new_channelbag(action: bpy.types.Action) -> bpy.types.ActionChannelbag:
        """The channels of a new slot (named ``SLOT_NAME``) on a new layer of ``action``."""
        slot = action.slots.new(id_type="OBJECT", name=SLOT_NAME)
        strip = action.layers.new("Layer").strips.new(type="KEYFRAME")
        assert isinstance(strip, bpy.types.ActionKeyframeStrip)  # the only kind up to 5.0
        bag = strip.channelbag(slot, ensure=True)
        if bag is None:  # typed optional since fake-bpy-module-latest; ensure=True always makes one
            raise SceneError(f"Blender made no channels for the action slot {slot.name_display!r}")
        return bag

    def _groups(bag: bpy.types.ActionChannelbag) -> Callable[[str], bpy.types.ActionGroup]:
        """The bag's group of each name, made on first use (looked up once per name)."""
        made: dict[str, bpy.types.ActionGroup] = {}

        def group(name: str) -> bpy.types.ActionGroup:
            if name not in made:
                made[name] = bag.groups.get(name) or bag.groups.new(name)
            return made[name]

        return group

    def write_new_curves(bag: bpy.types.ActionChannelbag, channels: Sequence[Channel]) -> None:
        """One new curve per channel, its keys added and set in bulk (4.4 and 4.5)."""
        group = _groups(bag)
        for channel in channels:
            curve = bag.fcurves.new(channel.data_path, index=channel.index)  # no group_name in 4.4
            curve.group = group(channel.group)
            fill_curve(curve, channel.co)

    def write_copied_curves(bag: bpy.types.ActionChannelbag, channels: Sequence[Channel]) -> None:
        """The same curves as :func:`write_new_curves`, each copied from a template curve that
        already holds its count of LINEAR keys: Blender copies the keys in one block, so only their
        (frame, value) pairs are set per curve (about a third less time per take on 5.0)."""
        # Blender 5.0+; the 4.5 stubs lack it.
        copy: Any = bag.fcurves.new_from_fcurve  # type: ignore[attr-defined,unused-ignore]
        templates: dict[tuple[int, int], bpy.types.FCurve] = {}
        group = _groups(bag)
        try:
            for channel in channels:
                count = channel.co.size // 2
                template = templates.get((channel.index, count))
                if template is None:
                    path = f'["hy_motion_template_{count}"]'  # removed below
                    template = bag.fcurves.new(path, index=channel.index)
                    fill_curve(template, channel.co)
                    templates[channel.index, count] = template
                curve = copy(template, data_path=channel.data_path)
                curve.group = group(channel.group)
                points = curve.keyframe_points
                points.foreach_set("co", channel.co)
                curve.update()  # handles: an artist who turns the keys to Bezier gets smooth ones
        finally:
            for template in templates.values():
                bag.fcurves.remove(template)


def new_armature_object(
    scene: bpy.types.Scene,
    data: bpy.types.Armature,
    name: str,
    collection: bpy.types.Collection | None = None,
) -> bpy.types.Object:
    """A new object for armature ``data``, linked and with its pose built.

    Assigning an action slot to an armature object whose pose does not exist yet (before the
    first depsgraph update) crashes bpy 5.0.1, so the view layer is updated once here.
    """
    obj = bpy.data.objects.new(name, data)
    (collection or scene.collection).objects.link(obj)
    if obj.pose is None:
        scene.view_layers[0].update()
    return obj


def assign_action(obj: bpy.types.Object, action: bpy.types.Action) -> None:
    """Play ``action`` on ``obj``, with its slot assigned explicitly on 4.4+."""
    anim = obj.animation_data or obj.animation_data_create()
    if anim is None:
        raise SceneError(f"{obj.name!r} cannot hold animation data")
    anim.action = action
    if IS_SLOTTED:
        anim.action_slot = action.slots[0]


def find_curve(action: bpy.types.Action, path: str, index: int) -> bpy.types.FCurve | None:
    if not IS_SLOTTED:
        return action.fcurves.find(path, index=index)
    for layer in action.layers:
        for strip in layer.strips:
            if isinstance(strip, bpy.types.ActionKeyframeStrip):
                bag = strip.channelbag(action.slots[0])
                curve = bag.fcurves.find(path, index=index) if bag is not None else None
                if curve is not None:
                    return curve
    return None


def _channelbag(action: bpy.types.Action) -> Any:
    """What holds ``action``'s curves and groups: the channels of its first slot (4.4+), or
    the action itself (legacy)."""
    if not IS_SLOTTED:
        return action
    for layer in action.layers:
        for strip in layer.strips:
            if isinstance(strip, bpy.types.ActionKeyframeStrip):
                bag = strip.channelbag(action.slots[0])
                if bag is not None:
                    return bag
    raise SceneError(f"action {action.name!r} has no channels for its slot")


def add_bone_curves(action: bpy.types.Action, channels: Sequence[Channel]) -> None:
    """Give ``action`` a curve, holding its keys, for each of ``channels`` it has none for."""
    missing = [c for c in channels if find_curve(action, c.data_path, c.index) is None]
    if not missing:
        return
    if IS_SLOTTED:
        write_new_curves(_channelbag(action), missing)
    else:
        _write_legacy_curves(action, missing)


def remove_bone_curves(action: bpy.types.Action, bone: str) -> None:
    """Remove ``bone``'s curves (and their group) from ``action``."""
    prefix = bone_path(bone, "")
    owner = _channelbag(action)
    for curve in [c for c in owner.fcurves if c.data_path.startswith(prefix)]:
        owner.fcurves.remove(curve)
    group = owner.groups.get(bone)
    if group is not None:
        owner.groups.remove(group)


def action_frames(action: bpy.types.Action) -> tuple[int, int]:
    return round(action.frame_range[0]), round(action.frame_range[1])


def read_motion(
    action: bpy.types.Action, data: bpy.types.Armature, dtype: npt.DTypeLike = np.float64
) -> tuple[motion.Skeleton, np.ndarray, np.ndarray]:
    """Model-space (skeleton, rotations (F, J, 4), pelvis positions (F, 3)) of an action on
    armature ``data``, as ``dtype``: the one reader of a take's motion (finishing, retargeting,
    export, Direction).

    Per frame, the values Blender plays: a curve with one key on each frame (as the add-on
    writes them) is read in bulk, any other (keys the artist edited) is evaluated frame by
    frame, so edits made after generating are in it too. Root keys count only where the
    action has them (a raw take has none: its root stays at the origin).
    """
    skeleton = armature_skeleton(data)
    names = skeleton.joint_names
    start, end = action_frames(action)
    frames = np.arange(start, end + 1, dtype=np.float64)

    def channels(bones: Sequence[str]) -> PoseChannels:
        def values(path: str, index: int, default: float) -> np.ndarray:
            return _frame_values(find_curve(action, path, index), frames, default)

        quats = np.array([[values(bone_path(n, "rotation_quaternion"), i, float(i == 0))
                           for i in range(4)] for n in bones])  # fmt: skip
        location = np.array([values(bone_path(bones[0], "location"), i, 0.0) for i in range(3)])
        return PoseChannels(quats.transpose(2, 0, 1), location.T)  # (F, J, 4), (F, 3)

    rooted = has_root_bone(data) and any(
        find_curve(action, bone_path(ROOT_BONE, "location"), i) for i in range(3)
    )
    root = channels((ROOT_BONE,)) if rooted else None
    rotations, pelvis = to_model(data, names, channels(names), root)
    return skeleton, rotations.astype(dtype), pelvis.astype(dtype)


def _frame_values(curve: bpy.types.FCurve | None, frames: np.ndarray, default: float) -> np.ndarray:
    """``curve``'s value at each of ``frames`` (float64); ``default`` where there is no curve."""
    if curve is None:
        return np.full(frames.size, default)
    points = curve.keyframe_points
    if len(points) == frames.size:
        co = np.empty(2 * frames.size, dtype=np.float32)
        points.foreach_get("co", co)
        if np.array_equal(co[0::2], frames):  # a key on every frame: the keys are the values
            return co[1::2].astype(np.float64)
    return np.array([curve.evaluate(f) for f in frames])
