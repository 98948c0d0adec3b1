"""Finishing in the panel (issue #10): per-take options, re-bake, and "Import BVH as Take"."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import bpy
from bpy.props import StringProperty

from . import history, take_finishing
from .core.errors import SettingsError
from .operators import _scene, _settings, _TakeOperator, browse_for_file, reports_errors
from .props import active_take, scene_settings
from .registration import class_registrar
from .sidebar import SidebarPanel
from .step_runner import StepsOperator

if TYPE_CHECKING:
    from .operators import Status


class HYMOTION_OT_finish_take(_TakeOperator, StepsOperator):
    """Re-bake the take from its raw motion with its finishing options (then, one per step,
    its Action on each character playing it; Esc stops)"""

    bl_idname = "hy_motion.finish_take"
    bl_label = "Re-bake Finishing"
    bl_options = {"REGISTER", "UNDO"}  # noqa: RUF012 (Blender reads a set)

    @reports_errors
    def execute(self, context: bpy.types.Context) -> Status:
        job = take_finishing.refinish_job(_scene(context), self.take(context))
        return self.run_steps(context, job)


class HYMOTION_OT_import_bvh(bpy.types.Operator):
    """Use a humanoid BVH (CMU, Daz, Mixamo names) as a take on the model's skeleton"""

    bl_idname = "hy_motion.import_bvh"
    bl_label = "Import BVH as Take"
    bl_options = {"REGISTER", "UNDO"}  # noqa: RUF012 (Blender reads a set)

    filepath: StringProperty(subtype="FILE_PATH")  # type: ignore[valid-type]
    filter_glob: StringProperty(default="*.bvh", options={"HIDDEN"})  # type: ignore[valid-type]

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> Status:
        return browse_for_file(self, context)

    @reports_errors
    def execute(self, context: bpy.types.Context) -> Status:
        if not self.filepath:
            raise SettingsError("choose a BVH file", field="filepath")
        scene = _scene(context)
        take = take_finishing.add_bvh_take(scene, Path(bpy.path.abspath(self.filepath)))
        settings = _settings(context)
        settings.active_take = len(settings.takes) - 1
        history.apply_take(scene, take)
        self.report({"INFO"}, f"Take {take.name!r}: {take.frames} frames at {take.fps:g} fps")
        return {"FINISHED"}


class HYMOTION_PT_finishing(SidebarPanel):
    bl_idname = "HYMOTION_PT_finishing"
    bl_label = "Finishing"
    bl_parent_id = "HYMOTION_PT_takes"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        if layout is None or context.scene is None:
            return
        settings = scene_settings(context.scene)
        layout.operator("hy_motion.import_bvh", icon="IMPORT")
        take = active_take(settings)
        if take is None:
            return
        options = take.finishing
        layout.prop(options, "foot_lock")
        col = layout.column(heading="Travel", align=True)
        row = col.row(align=True)
        row.prop(options, "in_place")
        row.prop(options, "root_bone")
        if options.in_place:
            row = col.row(align=True)
            row.prop(options, "in_place_x", toggle=True)
            row.prop(options, "in_place_z", toggle=True)
            row = col.row(align=True)
            row.prop(options, "keep_height", toggle=True)
            row.prop(options, "keep_facing", toggle=True)
        row = layout.row(align=True)
        row.prop(options, "loop")
        if options.loop:
            row.prop(options, "loop_blend")
        row = layout.row(align=True)
        row.label(text="Trim")
        row.prop(options, "trim_start")
        row.prop(options, "trim_end")
        row = layout.row(align=True)
        row.prop(options, "ease_in")
        row.prop(options, "ease_out")
        if options.ease_in or options.ease_out:
            row = layout.row(align=True)
            row.prop(options, "ease_pose", expand=True)
            if options.ease_pose == "FRAME":
                row.prop(options, "ease_frame")
        if options.status:
            layout.label(text=options.status, icon="INFO")
        layout.operator("hy_motion.finish_take", icon="FILE_REFRESH")


classes = (HYMOTION_OT_finish_take, HYMOTION_OT_import_bvh, HYMOTION_PT_finishing)


register, unregister = class_registrar(classes)
