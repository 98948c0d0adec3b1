"""Per-take finishing options (issue #10) as Blender properties, stored with each take.

Changing any option re-bakes that take's Action from its raw motion (``take_finishing``); a
refusal is shown on the take and leaves its Action as it was.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty

from .core.finishing.footlock import MODES, mode_thresholds
from .core.finishing.loop import BLEND_FRAMES
from .core.finishing.options import FinishOptions

_AUTO, _ALWAYS = mode_thresholds("AUTO"), mode_thresholds("ALWAYS")
_FOOT_LOCK_ITEMS = [
    ("OFF", "Off", "The take as generated"),
    (
        "AUTO",
        "Auto",
        "Lock feet during detected contacts: a heel or toe less than "
        f"{_AUTO.enter_height * 100:g} cm above its flat-foot height and slower than "
        f"{_AUTO.enter_speed:g} m/s (the model's body; scaled by leg length)",
    ),
    (
        "ALWAYS",
        "Always",
        "As Auto, and also feet that land already sliding: a foot may enter "
        f"contact at up to {_ALWAYS.enter_speed:g} m/s, and stays planted while it glides low and "
        f"level at up to {_ALWAYS.glide_speed:g} m/s for {_ALWAYS.glide_frames} frames or more "
        "(the model's body; scaled by leg length)",
    ),
    ("GROUNDING", "Grounding", "No locking: only keep every joint above the floor"),
]
assert {item[0] for item in _FOOT_LOCK_ITEMS} == set(MODES)  # one list of modes: the core's


def _changed(self: HYMOTION_PG_finishing, context: bpy.types.Context) -> None:
    from . import take_finishing  # imported late: it needs the registered take type

    take_finishing.on_options_changed(self)


def _bool(name: str, description: str, default: bool = False) -> Any:
    return BoolProperty(name=name, description=description, default=default, update=_changed)


def _int(name: str, description: str, default: int = 0, minimum: int = 0) -> Any:
    return IntProperty(name=name, description=description, default=default, min=minimum,
                       update=_changed)  # fmt: skip


class HYMOTION_PG_finishing(bpy.types.PropertyGroup):
    """What is done to one take after generation; the raw take is kept."""

    foot_lock: EnumProperty(name="Foot lock", items=_FOOT_LOCK_ITEMS, default="OFF",  # type: ignore[valid-type]
                            update=_changed)  # fmt: skip
    in_place: _bool("In place", "Remove the travel (the pelvis stays over the origin)")  # type: ignore[valid-type]
    in_place_x: _bool("Sideways", "Remove sideways travel", True)  # type: ignore[valid-type]
    in_place_z: _bool("Forward", "Remove forward travel", True)  # type: ignore[valid-type]
    keep_height: _bool("Keep height", "Off: the pelvis height is removed too", True)  # type: ignore[valid-type]
    keep_facing: _bool("Keep turning", "Off: turns about the vertical go too", True)  # type: ignore[valid-type]
    root_bone: _bool("Root bone", "Travel and turning on a root bone 'root' on the ground under "  # type: ignore[valid-type]
                     "the pelvis, as game engines take root motion (the built-in armature; "
                     "your own rig: Character > Root motion)")  # fmt: skip
    loop: _bool("Loop", "Trim to the best loop and blend its seam")  # type: ignore[valid-type]
    loop_blend: _int("Blend", "Frames of the loop's start cross-faded with what followed its end",  # type: ignore[valid-type]
                     BLEND_FRAMES, 1)  # fmt: skip
    trim_start: _int("Start", "First frame kept (0: the take's first)")  # type: ignore[valid-type]
    trim_end: _int("End", "Last frame kept (0: the take's last)")  # type: ignore[valid-type]
    ease_in: _int("Ease in", "Frames blended in from the ease pose")  # type: ignore[valid-type]
    ease_out: _int("Ease out", "Frames blended out to the ease pose")  # type: ignore[valid-type]
    ease_pose: EnumProperty(  # type: ignore[valid-type]
        name="Ease pose",
        items=[("REST", "Rest", "The skeleton's rest pose, standing"),
               ("FRAME", "Frame", "One of this take's frames")],
        default="REST", update=_changed,
    )  # fmt: skip
    ease_frame: _int("Pose frame", "The take's frame used as ease pose", 1, 1)  # type: ignore[valid-type]
    # Written by the re-bake, shown by the panel.
    status: StringProperty(name="Finishing status")  # type: ignore[valid-type]
    report: StringProperty(name="Finishing report", description="JSON")  # type: ignore[valid-type]

    def options(self) -> FinishOptions:
        """The options as the bpy-free core takes them (raises ``FinishingError``)."""
        return FinishOptions(**{f.name: getattr(self, f.name) for f in fields(FinishOptions)})

    def set_options(self, options: FinishOptions) -> None:
        """Store ``options`` without re-baking once per field (the caller re-bakes once)."""
        from . import take_finishing

        with take_finishing.quiet():
            for name, value in options.as_dict().items():
                setattr(self, name, value)
