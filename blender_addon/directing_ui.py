"""Direction in the panel (issue #11): start from the current pose or a take's end, end on a
keyed pose, loop, follow a curve, and a timeline of prompts producing one take.

Poses come from the target: with "New armature" the active take's Action as it plays now (keys
the artist added included), in the model space of the add-on's armature (its object at the
origin, unrotated); with "Selected armature" the character as Blender poses it at those frames,
read back onto the model skeleton relative to where the rig object stands (``core.rig_pose``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import bpy
import numpy as np
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from . import build, rig_history, rig_reader, rig_takes
from .core import directing, retarget, rig_pose
from .core.motion import kinematics
from .core.motion.skeletons import MODEL_SKELETON
from .core.protocol import constraints as wire
from .core.protocol import motion
from .core.rig_bones import RigBones
from .core.settings import GenerateSettings
from .props import HYMOTION_PG_take as Take
from .props import active_take, scene_settings
from .registration import class_registrar
from .sidebar import SidebarPanel
from .targets import RIG_TARGET

if TYPE_CHECKING:
    from .operators import Status


def _is_curve(self: bpy.types.PropertyGroup, obj: bpy.types.Object) -> bool:
    return obj.type == "CURVE"


class HYMOTION_PG_timeline_row(bpy.types.PropertyGroup):
    prompt: StringProperty(name="Prompt", description="What happens next")  # type: ignore[valid-type]
    duration_s: FloatProperty(name="Seconds", default=4.0, min=1.0, max=11.5)  # type: ignore[valid-type]


class HYMOTION_PG_direction(bpy.types.PropertyGroup):
    """What the next generation is held to (protocol "Constraints")."""

    start: EnumProperty(  # type: ignore[valid-type]
        name="Start",
        items=[("NONE", "Free", "The model chooses the first pose"),
               ("CURRENT", "Current Pose", "Start from the active take's pose at the current "
                "frame"),
               ("TAKE_END", "End of Take", "Continue from the active take's last frames")],
        default="NONE",
    )  # fmt: skip
    end_on_pose: BoolProperty(  # type: ignore[valid-type]
        name="End on Pose", description="Land on the active take's pose at a scene frame"
    )
    end_frame: IntProperty(name="Frame", description="Scene frame of the pose", default=90)  # type: ignore[valid-type]
    loop: BoolProperty(name="Loop", description="The take's end joins its start")  # type: ignore[valid-type]
    curve: PointerProperty(  # type: ignore[valid-type]
        name="Follow Curve", type=bpy.types.Object, poll=_is_curve,
        description="The pelvis follows this curve on the ground, start to end",
    )  # fmt: skip
    timeline: CollectionProperty(type=HYMOTION_PG_timeline_row)  # type: ignore[valid-type]
    active_row: IntProperty(default=0)  # type: ignore[valid-type]
    inbetween: EnumProperty(  # type: ignore[valid-type]
        name="In-between",
        items=[("OFF", "Off", "No in-between"),
               ("KEYS", "Between Keys", "The motion between the active take's poses at two "
                "frames; the new take has exactly the frames from one to the other"),
               ("TAKES", "Into Take", "From the active take's end into another take's start")],
        default="OFF",
    )  # fmt: skip
    inbetween_from: IntProperty(name="From", description="Scene frame of the first pose", default=1)  # type: ignore[valid-type]
    inbetween_to: IntProperty(name="To", description="Scene frame of the last pose", default=60)  # type: ignore[valid-type]
    inbetween_take: StringProperty(  # type: ignore[valid-type]
        name="Into", description="The take whose first frames the new take leads into"
    )


def direction(scene: bpy.types.Scene) -> HYMOTION_PG_direction:
    return scene.hy_motion_direction  # type: ignore[attr-defined,no-any-return]


def constraints_for(scene: bpy.types.Scene, duration_s: float) -> wire.Constraints | None:
    """The scene's Direction options as constraints (None when nothing is directed)."""
    options = direction(scene)
    rotations = pelvis = None
    take_start = scene.frame_start
    settings = scene_settings(scene)
    take = active_take(settings)
    take_frames = None
    if settings.target == RIG_TARGET:
        rotations, pelvis, take_start, take_frames = _rig_poses(scene, options, take)
    elif take is not None and take.action is not None and take.armature is not None:
        _, rotations, pelvis = build.read_motion(take.action, take.armature)
        take_start = build.action_frames(take.action)[0]
    timeline = directing.panel_timeline([(row.prompt, row.duration_s) for row in options.timeline])
    clip_frames = round(duration_s * motion.FPS) + sum(
        round(r.duration_s * motion.FPS) for r in timeline
    )
    constraints = directing.panel_constraints(
        rotations=rotations,
        pelvis=pelvis,
        take_start=take_start,
        start=options.start,
        current_frame=scene.frame_current,
        end_frame=options.end_frame if options.end_on_pose else None,
        loop=options.loop,
        curve_points=_curve_ground(scene, options.curve),
        timeline=timeline,
        clip_frames=clip_frames,
        take_frames=take_frames,
    )
    if constraints is not None and constraints.has_poses:
        assert constraints.pose_rotations is not None
        if not np.isfinite(constraints.pose_rotations).all():  # a frame _rig_poses did not read
            raise directing.DirectionError(
                "a pose was asked of the character at a frame that was not read", field="target"
            )
    return constraints


def directed_settings(scene: bpy.types.Scene, settings: GenerateSettings) -> GenerateSettings:
    """``settings`` with the panel's Direction options: an in-between also sets the duration."""
    options = direction(scene)
    if options.inbetween == "OFF":
        return replace(settings, constraints=constraints_for(scene, settings.duration_s))
    timeline = len(options.timeline) > 0  # a row without a prompt too: it is refused, not skipped
    if options.start != "NONE" or options.end_on_pose or options.loop or timeline:
        raise directing.DirectionError(INBETWEEN_CONFLICT, field="inbetween")
    take = active_take(scene_settings(scene))
    curve = _curve_ground(scene, options.curve)
    if options.inbetween == "KEYS" and scene_settings(scene).target == RIG_TARGET:
        return _inbetween_character_keys(scene, settings, options, curve)
    if scene_settings(scene).target == RIG_TARGET:
        raise directing.DirectionError(INBETWEEN_TAKES_ON_RIG, field="inbetween")
    before = _take_motion(take, "the active take")
    if options.inbetween == "KEYS":
        assert take is not None and take.action is not None
        constraints, duration_s = directing.inbetween_keys(
            *before, build.action_frames(take.action)[0], options.inbetween_from,
            options.inbetween_to, curve,
        )  # fmt: skip
        return replace(settings, duration_s=duration_s, constraints=constraints)
    after = _take_motion(_take_named(scene, options.inbetween_take), "the In-between's Into take")
    frames = motion.frames_for_duration(settings.duration_s)
    constraints, _ = directing.inbetween_takes(before, after, frames, curve)
    return replace(settings, constraints=constraints)


def _inbetween_character_keys(
    scene: bpy.types.Scene,
    settings: GenerateSettings,
    options: HYMOTION_PG_direction,
    curve: np.ndarray | None,
) -> GenerateSettings:
    """Between Keys with the character as target: its poses at From and To, read from the rig
    as Blender poses it (``character_poses``, one ground anchor for both)."""
    first, last = options.inbetween_from, options.inbetween_to
    frames = last - first + 1
    rotations = np.full((max(frames, 1), MODEL_SKELETON.joint_count, 4), np.nan)
    pelvis = np.full((max(frames, 1), 3), np.nan)
    if frames >= 2:  # a shorter span is refused by inbetween_keys, naming inbetween_to
        read = character_poses(scene, [first, last])
        rotations[[0, -1]], pelvis[[0, -1]] = read.rotations, read.root_positions
    constraints, duration_s = directing.inbetween_keys(rotations, pelvis, first, first, last, curve)
    return replace(settings, duration_s=duration_s, constraints=constraints)


INBETWEEN_TAKES_ON_RIG = (
    "In-between Into Take works on the add-on's own armature: with Target 'Selected armature' "
    "use Between Keys (your character's poses at From and To), or set Target to 'New armature'"
)


INBETWEEN_CONFLICT = (
    "In-between sets both ends of the new take: set Start to Free and turn End on Pose, Loop "
    "and the Timeline off, or set In-between to Off"
)


def _take_motion(take: Take | None, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Model-space rotations (F, J, 4) and pelvis (F, 3) of a take as it plays now."""
    if take is None or take.action is None or take.armature is None:
        raise directing.DirectionError(f"an in-between needs {what}, with its action",
                                       field="take")  # fmt: skip
    _, rotations, pelvis = build.read_motion(take.action, take.armature)
    return rotations, pelvis


def _take_named(scene: bpy.types.Scene, name: str) -> Take:
    if not name:
        raise directing.DirectionError("choose the take the in-between leads into (Into)",
                                       field="inbetween_take")  # fmt: skip
    named = [t for t in scene_settings(scene).takes if t.name == name]
    if not named:
        raise directing.DirectionError(f"there is no take named {name!r}", field="inbetween_take")
    if len(named) > 1:  # a file saved before take names were made unique
        raise directing.DirectionError(f"{len(named)} takes are named {name!r}: rename one",
                                       field="inbetween_take")  # fmt: skip
    return named[0]


def _rig_poses(
    scene: bpy.types.Scene, options: HYMOTION_PG_direction, take: Take | None
) -> tuple[np.ndarray | None, np.ndarray | None, int, int | None]:
    """(rotations (F, J, 4), pelvis (F, 3), scene frame of index 0, frames that are the
    take's) from the character, for ``panel_constraints``: its pose as Blender gives it at the
    current frame (Start: Current Pose) and at the end frame (End on Pose), read onto the model
    skeleton; for End of Take the active take's own frames first, at the height that take
    stands at on the rig. Frames nothing reads stay NaN. Every pose read shares the ground
    anchor of the first pose given."""
    frames = [scene.frame_current] if options.start == "CURRENT" else []
    if options.end_on_pose:
        frames.append(options.end_frame)
    end_of_take = take is not None and take.action is not None and take.armature is not None
    end_of_take = end_of_take and options.start == "TAKE_END"
    if not frames and not end_of_take:
        return None, None, scene.frame_start, None
    obj, rig, plan = _character(scene)
    lift, take_frames = None, None
    start = min([scene.frame_start, *frames])
    rotations = np.full((0, MODEL_SKELETON.joint_count, 4), np.nan)
    pelvis = np.full((0, 3), np.nan)
    if end_of_take:
        assert take is not None and take.action is not None and take.armature is not None
        _, rotations, pelvis = build.read_motion(take.action, take.armature)
        start, take_frames = build.action_frames(take.action)[0], len(rotations)
        rise, lift = _end_of_take_on_rig(scene, plan, take, rotations)
        pelvis = pelvis.astype(np.float64)
        pelvis[:, rig_pose.UP] += rise
        frames = [f for f in frames if f >= start]  # an earlier key: refused by its clip frame
    end = max([start + len(rotations) - 1, *frames])
    unread = end + 1 - start - len(rotations)  # frames past the take (or the scene's start)
    rotations = np.concatenate([rotations, np.full((unread, *rotations.shape[1:]), np.nan)])
    pelvis = np.concatenate([pelvis, np.full((unread, 3), np.nan)])
    if frames:
        read = character_poses(scene, frames, lift, (obj, rig, plan))
        indexes = [f - start for f in frames]
        rotations[indexes], pelvis[indexes] = read.rotations, read.root_positions
    return rotations, pelvis, start, take_frames


Character = tuple[bpy.types.Object, RigBones, retarget.RigPlan]


def character_poses(
    scene: bpy.types.Scene,
    frames: list[int],
    lift: float | None = None,
    character: Character | None = None,
) -> rig_pose.ModelPoses:
    """The character's poses at scene ``frames``, as Blender gives them, on the model skeleton
    (``core.rig_pose``); ``lift``: the ground anchor to read with (None: the first pose's)."""
    obj, rig, plan = character or _character(scene)
    posed = rig_reader.posed_matrices(scene, obj, rig.names, frames)
    heads, world = rig_pose.posed_bones(rig, posed)
    return rig_pose.model_poses(plan, heads, world, lift)


def _end_of_take_on_rig(
    scene: bpy.types.Scene, plan: retarget.RigPlan, take: Take, rotations: np.ndarray
) -> tuple[float, float]:
    """(rise, lift): how far to raise the take's frames (model metres) for its last ones, in a
    new take anchored at the first of them, to stand at the height the take itself stands at
    on the rig; and that new take's ground anchor (rig metres)."""
    motion = rig_history.motion_of(take)
    played = retarget.TakeMotion(motion.rotations, motion.root_positions, motion.fps,
                                 motion.anchor_frame)  # fmt: skip
    options = rig_history.options_of(scene_settings(scene).retarget)
    placed = retarget.retarget_takes(plan, [played], options)[0]
    was = rig_pose.placed_lift(plan, placed.root_positions, motion.root_positions)
    first = max(len(rotations) - directing.PREFIX_FRAMES, 0)
    world = kinematics.world_rotations(rotations[first], plan.model.parents)
    lift = rig_pose.pose_lift(plan, world)
    return (was - lift) / plan.calibration.scale, lift


def _character(scene: bpy.types.Scene) -> Character:
    """The character (``rig_history.character``), its bones and its calibration."""
    obj = rig_history.character(scene)
    rig = rig_reader.rig_bones(obj)
    return obj, rig, retarget.plan(MODEL_SKELETON, rig, rig_takes.rig_mapping(obj))


def _curve_ground(scene: bpy.types.Scene, obj: bpy.types.Object | None) -> np.ndarray | None:
    """Model ground (x, z) of the curve's evaluated points in order (Blender (x, y) = (x, −z));
    with the character as target, where the model goes for the character to follow it."""
    if obj is None:
        return None
    points = _curve_points(obj)
    if scene_settings(scene).target != RIG_TARGET:
        return points
    character, _, plan = _character(scene)
    origin = np.array(character.matrix_world)[:3, 3]
    return rig_pose.Placement.of(plan, origin).path_to_model(points)


def _curve_points(obj: bpy.types.Object) -> np.ndarray:
    depsgraph = bpy.context.evaluated_depsgraph_get()
    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    if mesh is None:  # a curve with no points evaluates to no mesh
        evaluated.to_mesh_clear()
        raise directing.DirectionError(f"the curve {obj.name!r} has no points", field="curve")
    try:
        local = np.array([v.co for v in mesh.vertices], dtype=np.float64).reshape(-1, 3)
    finally:
        evaluated.to_mesh_clear()
    matrix = np.array(obj.matrix_world)
    world = local @ matrix[:3, :3].T + matrix[:3, 3]
    return np.stack([world[:, 0], -world[:, 1]], axis=-1)


class HYMOTION_OT_timeline_add(bpy.types.Operator):
    """Add a prompt that continues the take"""

    bl_idname = "hy_motion.timeline_add"
    bl_label = "Add Timeline Row"
    bl_options = {"REGISTER", "UNDO"}  # noqa: RUF012 (Blender reads a set)

    def execute(self, context: bpy.types.Context) -> Status:
        assert context.scene is not None
        options = direction(context.scene)
        options.timeline.add()
        options.active_row = len(options.timeline) - 1
        return {"FINISHED"}


class HYMOTION_OT_timeline_remove(bpy.types.Operator):
    """Remove the selected timeline row"""

    bl_idname = "hy_motion.timeline_remove"
    bl_label = "Remove Timeline Row"
    bl_options = {"REGISTER", "UNDO"}  # noqa: RUF012 (Blender reads a set)

    def execute(self, context: bpy.types.Context) -> Status:
        assert context.scene is not None
        options = direction(context.scene)
        if 0 <= options.active_row < len(options.timeline):
            options.timeline.remove(options.active_row)
            options.active_row = max(0, options.active_row - 1)
        return {"FINISHED"}


class HYMOTION_UL_timeline(bpy.types.UIList):
    def draw_item(self, context: bpy.types.Context | None, layout: bpy.types.UILayout, data: Any,
                  item: Any, icon: int | None, active_data: Any, active_property: str | None,
                  index: int | None = 0, flt_flag: int | None = 0) -> None:  # fmt: skip
        row = layout.row(align=True)
        row.prop(item, "prompt", text="", emboss=False)
        row.prop(item, "duration_s", text="")


class HYMOTION_PT_direction(SidebarPanel):
    bl_idname = "HYMOTION_PT_direction"
    bl_label = "Direction"
    bl_parent_id = "HYMOTION_PT_main"
    bl_options = {"DEFAULT_CLOSED"}  # noqa: RUF012 (Blender reads a set)

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        if layout is None or context.scene is None:
            return
        options = direction(context.scene)
        if scene_settings(context.scene).target == RIG_TARGET:
            layout.label(text="Poses are read from your character", icon="ARMATURE_DATA")
        layout.prop(options, "start")
        row = layout.row(align=True)
        row.prop(options, "end_on_pose")
        if options.end_on_pose:
            row.prop(options, "end_frame")
        layout.prop(options, "loop")
        layout.prop(options, "curve")
        layout.prop(options, "inbetween")
        if options.inbetween == "KEYS":
            row = layout.row(align=True)
            row.prop(options, "inbetween_from")
            row.prop(options, "inbetween_to")
        elif options.inbetween == "TAKES":
            settings = scene_settings(context.scene)
            layout.prop_search(options, "inbetween_take", settings, "takes", icon="ACTION")
        layout.label(text="Timeline (after the prompt above)")
        row = layout.row()
        row.template_list(
            "HYMOTION_UL_timeline", "", options, "timeline", options, "active_row", rows=3
        )
        col = row.column(align=True)
        col.operator("hy_motion.timeline_add", text="", icon="ADD")
        col.operator("hy_motion.timeline_remove", text="", icon="REMOVE")


classes = (
    HYMOTION_PG_timeline_row,
    HYMOTION_PG_direction,
    HYMOTION_OT_timeline_add,
    HYMOTION_OT_timeline_remove,
    HYMOTION_UL_timeline,
    HYMOTION_PT_direction,
)
_register, _unregister = class_registrar(classes)


def register() -> None:
    _register()
    bpy.types.Scene.hy_motion_direction = PointerProperty(type=HYMOTION_PG_direction)  # type: ignore[attr-defined,func-returns-value]


def unregister() -> None:
    del bpy.types.Scene.hy_motion_direction  # type: ignore[attr-defined]
    _unregister()
