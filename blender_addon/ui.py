"""The sidebar panel: View3D > Sidebar > HY-Motion."""

from __future__ import annotations

from typing import Any

import bpy

from . import runtime
from .props import HYMOTION_PG_settings, active_take, scene_settings
from .registration import class_registrar
from .sidebar import SidebarPanel


class HYMOTION_UL_takes(bpy.types.UIList):
    def draw_item(self, context: bpy.types.Context | None, layout: bpy.types.UILayout, data: Any,
                  item: Any, icon: int | None, active_data: Any, active_property: str | None,
                  index: int | None = 0, flt_flag: int | None = 0) -> None:  # fmt: skip
        row = layout.row(align=True)
        row.prop(item, "name", text="", emboss=False, icon="ACTION")
        if item.untrained:
            row.label(text="untrained", icon="ERROR")
        row.label(text=f"{item.frames} f")


class HYMOTION_PT_main(SidebarPanel):
    bl_idname = "HYMOTION_PT_main"
    bl_label = "HY-Motion"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        if layout is None or context.scene is None:
            return
        settings = scene_settings(context.scene)
        layout.prop(settings, "prompt", text="")
        col = layout.column(align=True)
        col.prop(settings, "duration_s")
        col.prop(settings, "candidates")
        row = col.row(align=True)
        row.prop(settings, "seed_mode", expand=True)
        if settings.seed_mode == "FIXED":
            col.prop(settings, "seed")
        col.prop(settings, "guidance")
        col.prop(settings, "steps")
        layout.prop(settings, "target")
        row = layout.row(align=True)
        row.prop(settings, "side_by_side")
        row.prop(settings, "spacing")
        session = runtime.current()
        busy = session is not None and session.view.busy
        row = layout.row(align=True)
        row.scale_y = 1.4
        if busy:
            row.operator("hy_motion.cancel", icon="CANCEL")
        else:
            row.operator("hy_motion.generate", icon="PLAY")
        self._draw_status(layout, settings, busy)

    @staticmethod
    def _draw_status(
        layout: bpy.types.UILayout, settings: HYMOTION_PG_settings, busy: bool
    ) -> None:
        if busy:
            layout.progress(factor=settings.progress, type="BAR", text=settings.status_message)
        elif settings.status_message:
            failed = settings.status_state in ("failed", "cancelled")
            layout.label(text=settings.status_message, icon="ERROR" if failed else "CHECKMARK")
        if settings.status_hint:
            layout.label(text=settings.status_hint, icon="INFO")
        row = layout.row(align=True)
        row.label(text=settings.server_line or "Not connected", icon="LINKED")
        row.operator("hy_motion.check_connection", text="", icon="FILE_REFRESH")


class HYMOTION_PT_takes(SidebarPanel):
    bl_idname = "HYMOTION_PT_takes"
    bl_label = "Takes"
    bl_parent_id = "HYMOTION_PT_main"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        if layout is None or context.scene is None:
            return
        settings = scene_settings(context.scene)
        row = layout.row()
        row.template_list(
            "HYMOTION_UL_takes", "", settings, "takes", settings, "active_take", rows=4
        )
        col = row.column(align=True)
        col.operator("hy_motion.apply_take", text="", icon="PLAY")
        col.operator("hy_motion.compare_takes", text="", icon="MOD_ARRAY")
        col.operator("hy_motion.delete_take", text="", icon="X")
        take = active_take(settings)
        if take is not None:
            box = layout.box()
            box.label(text=take.prompt)
            box.label(text=f"seed {take.seed} · guidance {take.guidance:g} · {take.steps} steps")
            box.label(text=f"{take.model_label} · daemon {take.server_version} · {take.created}")
            if take.untrained:
                box.label(text="Untrained model: random weights, not real motion", icon="ERROR")
        layout.prop(settings.retarget, "engine")  # FBX preset per engine (issue #9)
        row = layout.row(align=True)
        row.prop(settings, "export_format", text="")
        for scope, text in (("ACTIVE", "Export"), ("ALL", "All")):
            button = row.operator("hy_motion.export_takes", text=text, icon="EXPORT")
            if button is not None:  # typed optional since fake-bpy-module-latest
                button.scope = scope


classes = (HYMOTION_UL_takes, HYMOTION_PT_main, HYMOTION_PT_takes)


register, unregister = class_registrar(classes)
