"""Operators for the artist's own rig: choose it, map it, save and load mapping presets."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import bpy
from bpy.props import BoolProperty, StringProperty

from . import rig_reader, rig_takes
from .core import bone_mapping
from .core.bone_mapping import BoneMapping
from .core.errors import PresetError
from .core.rig_conventions import BODY_JOINTS
from .operators import _settings, ask_properties, reports_errors
from .registration import class_registrar
from .rig_props import HYMOTION_PG_retarget
from .targets import RIG_TARGET

if TYPE_CHECKING:
    from .operators import Status


def _retarget(context: bpy.types.Context) -> HYMOTION_PG_retarget:
    return _settings(context).retarget


def show_mapping(settings: HYMOTION_PG_retarget, obj: bpy.types.Object) -> BoneMapping:
    """Fill the panel's mapping rows from the rig's mapping (saved or automatic)."""
    mapping = rig_takes.rig_mapping(obj)
    settings.mapping.clear()
    for joint in BODY_JOINTS:
        row = settings.mapping.add()
        row.name, row.bone = joint, mapping.joints.get(joint, "")
    settings.mapping_rig = obj.name
    settings.mapping_label = mapping.label
    unmapped = mapping.unmapped(rig_reader.rig_bones(obj))
    settings.unmapped = f"{len(unmapped)} bones follow their parents: " + ", ".join(unmapped[:12])
    return mapping


def store_rows(settings: HYMOTION_PG_retarget) -> None:
    """Save the panel's rows on the rig (checked when a take is applied)."""
    obj = settings.rig
    if obj is None or settings.mapping_rig != obj.name:
        return
    saved = rig_takes.rig_mapping_unchecked(obj)
    joints = {row.name: row.bone for row in settings.mapping if row.bone}
    obj[rig_takes.MAPPING_KEY] = bone_mapping.preset_text(
        BoneMapping(
            saved.convention, joints, saved.followers, saved.translation_bone, saved.switches
        )
    )


class HYMOTION_OT_use_character(bpy.types.Operator):
    """Retarget takes onto the selected armature (your character) and show its bone mapping"""

    bl_idname = "hy_motion.use_character"
    bl_label = "Use Selected Armature"
    bl_options = {"REGISTER", "UNDO"}  # noqa: RUF012 (Blender reads a set)

    @reports_errors
    def execute(self, context: bpy.types.Context) -> Status:
        active = context.active_object
        if active is not None and active.type != "ARMATURE" and active.parent is not None:
            active = active.parent  # the character's mesh selected: its armature
        obj = rig_reader.check_rig(active)
        settings = _retarget(context)
        settings.rig = obj
        _settings(context).target = RIG_TARGET
        mapping = show_mapping(settings, obj)
        self.report({"INFO"}, f"{obj.name}: {mapping.label}, {len(mapping.joints)} of 22 joints")
        return {"FINISHED"}


class HYMOTION_OT_map_character(bpy.types.Operator):
    """Map the character's bones automatically (convention from names, else from its shape)"""

    bl_idname = "hy_motion.map_character"
    bl_label = "Map Automatically"
    bl_options = {"REGISTER", "UNDO"}  # noqa: RUF012 (Blender reads a set)

    @reports_errors
    def execute(self, context: bpy.types.Context) -> Status:
        settings = _retarget(context)
        obj = rig_reader.check_rig(settings.rig)
        obj[rig_takes.MAPPING_KEY] = ""  # empty: map automatically
        show_mapping(settings, obj)
        return {"FINISHED"}


class HYMOTION_OT_save_mapping(bpy.types.Operator):
    """Save the character's bone mapping as a preset in the presets folder"""

    bl_idname = "hy_motion.save_mapping"
    bl_label = "Save Mapping Preset"

    name: StringProperty(name="Preset name", default="my character")  # type: ignore[valid-type]
    overwrite: BoolProperty(name="Overwrite", default=False)  # type: ignore[valid-type]

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> Status:
        return ask_properties(self, context)

    @reports_errors
    def execute(self, context: bpy.types.Context) -> Status:
        settings = _retarget(context)
        obj = rig_reader.check_rig(settings.rig)
        path = bone_mapping.save_preset(
            _folder(settings), self.name, rig_takes.rig_mapping(obj), self.overwrite
        )
        self.report({"INFO"}, f"Saved {path}")
        return {"FINISHED"}


class HYMOTION_OT_load_mapping(bpy.types.Operator):
    """Load the chosen preset of the presets folder onto the character (refused if it is for
    another kind of rig)"""

    bl_idname = "hy_motion.load_mapping"
    bl_label = "Load Mapping Preset"
    bl_options = {"REGISTER", "UNDO"}  # noqa: RUF012 (Blender reads a set)

    filepath: StringProperty(  # type: ignore[valid-type]
        name="Preset file", subtype="FILE_PATH", description="Empty: the chosen preset"
    )

    @reports_errors
    def execute(self, context: bpy.types.Context) -> Status:
        settings = _retarget(context)
        obj = rig_reader.check_rig(settings.rig)
        if self.filepath:
            path = Path(bpy.path.abspath(self.filepath))
        elif settings.preset:
            path = bone_mapping.preset_path(_folder(settings), settings.preset)
        else:
            raise PresetError("pick a preset from the presets folder", field="preset")
        mapping = bone_mapping.load_preset(path, rig_reader.rig_bones(obj))
        obj[rig_takes.MAPPING_KEY] = bone_mapping.preset_text(mapping)
        show_mapping(settings, obj)
        self.report({"INFO"}, f"Loaded {path.name} onto {obj.name}")
        return {"FINISHED"}


def _folder(settings: HYMOTION_PG_retarget) -> Path:
    if not settings.preset_folder:
        raise PresetError("choose a presets folder first", field="preset_folder")
    return Path(bpy.path.abspath(settings.preset_folder))


classes = (
    HYMOTION_OT_use_character,
    HYMOTION_OT_map_character,
    HYMOTION_OT_save_mapping,
    HYMOTION_OT_load_mapping,
)
register, unregister = class_registrar(classes)
