"""Scene data for takes on the artist's own rig (target "Selected armature")."""

from __future__ import annotations

import bpy
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    EnumProperty,
    PointerProperty,
    StringProperty,
)

from .core.retarget import ROOT_MOTION_MODES
from .registration import class_registrar

ROOT_MOTION_ITEMS = [
    ("KEEP", "Keep", "The character travels as in the take, scaled by leg length"),
    ("IN_PLACE", "In place", "No travel along the ground (cycles for game engines)"),
    ("ROOT_BONE", "Root bone", "Travel and turning on the rig's root bone on the ground; the "
     "pelvis keeps the rest (root motion for Unreal and Unity)"),
]  # fmt: skip
assert tuple(item[0] for item in ROOT_MOTION_ITEMS) == ROOT_MOTION_MODES


def _preset_items(
    self: bpy.types.PropertyGroup, _context: bpy.types.Context | None
) -> list[tuple[str, str, str]]:
    """The presets in the presets folder, by name (Blender keeps the strings alive here)."""
    from pathlib import Path

    from .core.bone_mapping import list_presets

    folder_text = str(getattr(self, "preset_folder", ""))  # on HYMOTION_PG_retarget, below
    folder = Path(bpy.path.abspath(folder_text)) if folder_text else None
    names = [p.stem for p in list_presets(folder)] if folder else []
    _PRESET_ITEMS[:] = [(n, n, f"Bone-mapping preset {n}.json") for n in names] or [
        ("", "(no presets)", "Save one, or choose a folder that has some")
    ]
    return _PRESET_ITEMS


_PRESET_ITEMS: list[tuple[str, str, str]] = []


def _is_armature(_self: bpy.types.PropertyGroup, obj: bpy.types.Object) -> bool:
    return obj.type == "ARMATURE"


class HYMOTION_PG_rig_take(bpy.types.PropertyGroup):
    """A take retargeted onto one rig: its Action there, and the options it was made with."""

    rig: PointerProperty(name="Rig", type=bpy.types.Object)  # type: ignore[valid-type]
    action: PointerProperty(name="Action", type=bpy.types.Action)  # type: ignore[valid-type]
    options: StringProperty(name="Options")  # type: ignore[valid-type]


def _row_changed(_self: bpy.types.PropertyGroup, context: bpy.types.Context) -> None:
    from . import rig_operators  # imports this module

    if context.scene is not None:
        rig_operators.store_rows(context.scene.hy_motion.retarget)  # type: ignore[attr-defined]


class HYMOTION_PG_joint_bone(bpy.types.PropertyGroup):
    """One row of the bone mapping shown in the panel: model joint (``name``) -> bone."""

    bone: StringProperty(  # type: ignore[valid-type]
        name="Bone", description="Bone of your rig that plays this joint", update=_row_changed
    )


class HYMOTION_PG_retarget(bpy.types.PropertyGroup):
    rig: PointerProperty(  # type: ignore[valid-type]
        name="Character", type=bpy.types.Object, poll=_is_armature,
        description="Your character's armature: takes are retargeted onto it",
    )  # fmt: skip
    root_motion: EnumProperty(name="Root motion", items=ROOT_MOTION_ITEMS, default="KEEP")  # type: ignore[valid-type]
    pin_feet: BoolProperty(  # type: ignore[valid-type]
        name="Plant feet", default=True,
        description="While a foot is down in the take, keep it from sliding on your character",
    )  # fmt: skip
    relax_fingers: BoolProperty(  # type: ignore[valid-type]
        name="Relax fingers", default=True,
        description="Key a relaxed curl on finger bones (the model does not move fingers)",
    )  # fmt: skip
    key_ik: BoolProperty(  # type: ignore[valid-type]
        name="Key IK controls", default=True,
        description="Key the rig's IK controls (Rigify, Auto-Rig Pro) and IK bones (Unreal) to "
        "follow the hands and feet, and its IK pole targets in the knees' and elbows' bend "
        "plane, so a switch to IK keeps the pose",
    )  # fmt: skip
    ik_limbs: BoolProperty(  # type: ignore[valid-type]
        name="Limbs in IK", default=False,
        description="Play arms and legs through the rig's IK controls (Rigify, Auto-Rig Pro); "
        "off: FK controls drive them",
    )  # fmt: skip
    preset_folder: StringProperty(  # type: ignore[valid-type]
        name="Presets", subtype="DIR_PATH",
        description="Folder of bone-mapping presets (.json), e.g. one your studio shares",
    )  # fmt: skip
    engine: EnumProperty(  # type: ignore[valid-type]
        name="Export for", default="BLENDER",
        items=[
            ("BLENDER", "Blender", "FBX that re-imports into Blender exactly"),
            ("UNREAL", "Unreal Engine", "FBX for Unreal: armature node dropped on import, the "
             "rig's top bone is the root, units in the file's unit scale"),
            ("UNITY", "Unity", "FBX for Unity: every scale applied, the rig's name as root"),
        ],
    )  # fmt: skip
    deform_only: BoolProperty(  # type: ignore[valid-type]
        name="Deform bones only", default=False,
        description="Export only the bones that deform the mesh (e.g. Rigify's DEF bones)",
    )  # fmt: skip
    include_meshes: BoolProperty(  # type: ignore[valid-type]
        name="Include meshes", default=True,
        description="FBX: also write the meshes skinned to the rig (a character file the engine "
        "imports as a skeletal mesh with its animation); off: the skeleton and the animation "
        "only, for a character the engine has already",
    )  # fmt: skip
    preset: EnumProperty(name="Preset", items=_preset_items)  # type: ignore[valid-type]
    mapping: CollectionProperty(type=HYMOTION_PG_joint_bone)  # type: ignore[valid-type]
    mapping_rig: StringProperty()  # type: ignore[valid-type]  # the rig ``mapping`` shows
    mapping_label: StringProperty()  # type: ignore[valid-type]
    unmapped: StringProperty()  # type: ignore[valid-type]  # bones that follow their parents


classes = (HYMOTION_PG_rig_take, HYMOTION_PG_joint_bone, HYMOTION_PG_retarget)
register, unregister = class_registrar(classes)
