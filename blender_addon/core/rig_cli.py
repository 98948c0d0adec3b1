"""The batch's character flags (no bpy): ``--target-rig`` and the retarget/export options."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from .errors import BatchInputError, MappingError, PresetError, RigError
from .retarget import ROOT_MOTION_MODES, RetargetOptions

ENGINES = ("blender", "unreal", "unity")
#: What a character the batch cannot use raises (the rig, its mapping, ``--mapping-preset``):
#: checked before any work, a usage error (exit 2).
CHARACTER_ERRORS = (RigError, MappingError, PresetError)
RIG_SUFFIXES = (".blend", ".fbx")


@dataclass(frozen=True)
class RigTarget:
    """The character every take is retargeted onto and exported from."""

    path: Path | None  # None: no rig, only the export options (built-in armature)
    object_name: str  # "" for an FBX given without ":ARMATURE" (its one armature)
    options: RetargetOptions
    engine: str  # BLENDER, UNREAL, UNITY
    deform_only: bool
    preset: Path | None
    meshes: bool = True  # the rig's skinned meshes go into its FBX files

    def as_dict(self) -> dict[str, object]:
        return {
            "file": str(self.path) if self.path else None, "object": self.object_name,
            "root_motion": self.options.root_motion, "plant_feet": self.options.pin_feet,
            "relax_fingers": self.options.relax_fingers, "ik_controls": self.options.key_ik,
            "ik_limbs": self.options.ik_limbs,
            "engine": self.engine,
            "deform_only": self.deform_only, "meshes": self.meshes,
            "preset": str(self.preset) if self.preset else None,
        }  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "character", "retarget every take onto your rig and export from it (docs/addon.md)"
    )
    group.add_argument("--target-rig", default="", metavar="FILE.blend:OBJECT|FILE.fbx[:ARMATURE]",
                       help="the armature object in a .blend, or a character .fbx (:ARMATURE "
                       "picks one of several)")  # fmt: skip
    # No default value: a --root-motion given without --target-rig is refused, even "keep".
    group.add_argument("--root-motion", default=None,
                       choices=[m.lower() for m in ROOT_MOTION_MODES],
                       help="travel: scaled (keep, the default), none (in_place), or on the "
                       "rig's root bone (root_bone)")  # fmt: skip
    group.add_argument("--no-plant-feet", action="store_true",
                       help="do not hold planted feet with IK")  # fmt: skip
    group.add_argument("--no-relax-fingers", action="store_true",
                       help="leave finger bones in their rest pose")  # fmt: skip
    group.add_argument("--no-ik-controls", action="store_true",
                       help="do not key IK controls/bones (hands, feet) nor IK poles")  # fmt: skip
    group.add_argument("--ik-limbs", action="store_true",
                       help="play arms and legs through the rig's IK controls")  # fmt: skip
    group.add_argument("--engine", default="blender", choices=ENGINES,
                       help="FBX preset (%(default)s); also for the built-in armature")  # fmt: skip
    group.add_argument("--deform-only", action="store_true",
                       help="export only deforming bones")  # fmt: skip
    group.add_argument("--no-meshes", action="store_true",
                       help="FBX with the skeleton and the animation only, without the rig's "
                       "skinned meshes")  # fmt: skip
    group.add_argument("--mapping-preset", type=Path, default=None, metavar="FILE.json",
                       help="bone mapping for the rig (default: automatic)")  # fmt: skip


def target_from_args(args: argparse.Namespace) -> RigTarget | None:
    """The character flags as a :class:`RigTarget`; None when they ask for nothing (no rig,
    Blender FBX, every bone). Bad values raise ``BatchInputError`` naming the flag."""
    if not args.target_rig:
        for flag, used in (("--root-motion", args.root_motion is not None),
                           ("--mapping-preset", args.mapping_preset is not None),
                           ("--no-plant-feet", args.no_plant_feet),
                           ("--no-relax-fingers", args.no_relax_fingers),
                           ("--no-ik-controls", args.no_ik_controls),
                           ("--ik-limbs", args.ik_limbs),
                           ("--no-meshes", args.no_meshes)):  # fmt: skip
            if used:
                raise BatchInputError(f"{flag} needs --target-rig", field=flag)
        if args.engine == "blender" and not args.deform_only:
            return None
        return RigTarget(None, "", RetargetOptions(), args.engine.upper(), args.deform_only, None)
    text = args.target_rig
    path, sep, name = _split_object(text)
    if path.suffix.lower() not in RIG_SUFFIXES:
        raise BatchInputError(
            f"--target-rig takes FILE.blend:OBJECT, FILE.fbx or FILE.fbx:ARMATURE, not {text!r}",
            field="--target-rig",
        )
    if path.suffix.lower() == ".blend" and not (sep and name):
        raise BatchInputError(
            f"--target-rig {text!r}: name the armature object after ':' (hero.blend:Armature)",
            field="--target-rig",
        )
    if sep and not name:  # "hero.fbx:": a name was meant and left out
        raise BatchInputError(
            f"--target-rig {text!r}: name the armature after ':' (hero.fbx:Armature), or leave "
            "':' out for an FBX with one armature",
            field="--target-rig",
        )
    if not path.is_file():
        raise BatchInputError(f"--target-rig: {path} does not exist", field="--target-rig")
    if args.mapping_preset is not None and not args.mapping_preset.is_file():
        raise BatchInputError(f"--mapping-preset: {args.mapping_preset} does not exist",
                              field="--mapping-preset")  # fmt: skip
    options = RetargetOptions(root_motion=(args.root_motion or "keep").upper(),
                              pin_feet=not args.no_plant_feet,
                              relax_fingers=not args.no_relax_fingers,
                              key_ik=not args.no_ik_controls, ik_limbs=args.ik_limbs)  # fmt: skip
    return RigTarget(path, name, options, args.engine.upper(), args.deform_only,
                     args.mapping_preset, meshes=not args.no_meshes)  # fmt: skip


def _split_object(text: str) -> tuple[Path, str, str]:
    """``FILE.blend:OBJECT`` / ``FILE.fbx[:ARMATURE]`` -> (file, ":" or "", object name). Only
    a ':' right after the suffix splits, so a drive letter (``C:\\rigs\\hero.fbx``) stays."""
    lowered = text.lower()
    for suffix in RIG_SUFFIXES:
        at = lowered.rfind(suffix + ":")
        if at >= 0:
            end = at + len(suffix)
            return Path(text[:end]), ":", text[end + 1 :]
    return Path(text), "", ""
