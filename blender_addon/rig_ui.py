"""The panel's Character section: the artist's rig, root motion, feet, fingers, bone mapping."""

from __future__ import annotations

import bpy

from .props import scene_settings
from .registration import class_registrar
from .sidebar import SidebarPanel
from .targets import RIG_TARGET


class HYMOTION_PT_character(SidebarPanel):
    bl_idname = "HYMOTION_PT_character"
    bl_label = "Character"
    bl_parent_id = "HYMOTION_PT_main"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.scene is not None and scene_settings(context.scene).target == RIG_TARGET

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        if layout is None or context.scene is None:
            return
        settings = scene_settings(context.scene).retarget
        row = layout.row(align=True)
        row.prop(settings, "rig", text="")
        row.operator("hy_motion.use_character", text="", icon="EYEDROPPER")
        col = layout.column(align=True)
        col.prop(settings, "root_motion")
        col.prop(settings, "pin_feet")
        col.prop(settings, "relax_fingers")
        col.prop(settings, "key_ik")
        col.prop(settings, "ik_limbs")
        col = layout.column(align=True)
        col.prop(settings, "deform_only")
        col.prop(settings, "include_meshes")
        rig = settings.rig
        box = layout.box()
        row = box.row(align=True)
        row.label(text=settings.mapping_label or "Bone mapping", icon="ARMATURE_DATA")
        row.operator("hy_motion.map_character", text="", icon="FILE_REFRESH")
        if rig is not None and settings.mapping_rig == rig.name:
            for item in settings.mapping:
                box.prop_search(item, "bone", rig.data, "bones", text=item.name)
            if settings.unmapped:
                box.label(text=settings.unmapped, icon="INFO")
        box.prop(settings, "preset_folder", text="")
        row = box.row(align=True)
        row.prop(settings, "preset", text="")
        row.operator("hy_motion.load_mapping", text="", icon="IMPORT")
        row.operator("hy_motion.save_mapping", text="", icon="FILE_TICK")


classes = (HYMOTION_PT_character,)
register, unregister = class_registrar(classes)
