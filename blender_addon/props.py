"""The add-on's scene data: one PropertyGroup on ``Scene.hy_motion`` (takes history included,
so it is saved in the .blend)."""

from __future__ import annotations

import bpy
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from . import rig_props
from .core import naming
from .core.protocol import messages
from .finishing_props import HYMOTION_PG_finishing
from .registration import class_registrar
from .targets import TARGETS

_LIMITS = messages.DEFAULT_LIMITS


def _is_armature(_self: bpy.types.PropertyGroup, obj: bpy.types.Object) -> bool:
    return obj.type == "ARMATURE"


def _take_renamed(self: HYMOTION_PG_take, _context: bpy.types.Context) -> None:
    """Every take's name is unique (Into Take and the takes list look takes up by name): a
    name another take has gets Blender's ``.001`` numbering. The take's Actions follow."""
    from . import history  # imported late: history imports this module

    if not self.name.strip():  # cleared in the takes list: back to the name it was made with
        self.name = naming.take_name(self.prompt, int(self.seed or 0))  # calls this again
        return
    scene = self.id_data
    if isinstance(scene, bpy.types.Scene):
        others = [
            t.name for t in scene_settings(scene).takes if t.as_pointer() != self.as_pointer()
        ]
        unique = naming.unique_name(self.name, others)
        if unique != self.name:
            self.name = unique  # calls this again
            return
    history.name_actions(self)


class HYMOTION_PG_take(bpy.types.PropertyGroup):
    """One generated candidate: its Action and everything needed to redo or credit it."""

    # The take's display name (PropertyGroup's own ``name``, redefined to follow renames made
    # in the takes list): its Actions are renamed with it.
    name: StringProperty(name="Name", update=_take_renamed)  # type: ignore[valid-type]
    prompt: StringProperty(name="Prompt")  # type: ignore[valid-type]
    seed: StringProperty(  # type: ignore[valid-type]
        name="Seed", description=f"Seed of this candidate (0 to {messages.MAX_SEED})"
    )
    candidate: IntProperty(name="Candidate")  # type: ignore[valid-type]
    duration_s: FloatProperty(name="Duration", unit="TIME_ABSOLUTE")  # type: ignore[valid-type]
    frames: IntProperty(name="Frames")  # type: ignore[valid-type]
    fps: FloatProperty(name="FPS")  # type: ignore[valid-type]
    guidance: FloatProperty(name="Guidance")  # type: ignore[valid-type]
    steps: IntProperty(name="Steps")  # type: ignore[valid-type]
    created: StringProperty(name="Created", description="Local date and time of generation")  # type: ignore[valid-type]
    server_version: StringProperty(name="Daemon version")  # type: ignore[valid-type]
    model: StringProperty(name="Model")  # type: ignore[valid-type]
    model_label: StringProperty(name="Model label")  # type: ignore[valid-type]
    untrained: BoolProperty(  # type: ignore[valid-type]
        name="Untrained",
        description="Made by the built-in tiny model: random weights, not real motion",
    )
    job_id: StringProperty(name="Job id")  # type: ignore[valid-type]
    action: PointerProperty(name="Action", type=bpy.types.Action)  # type: ignore[valid-type]
    armature: PointerProperty(name="Armature data", type=bpy.types.Armature)  # type: ignore[valid-type]
    # Finishing (issue #10): options, and the raw take they are applied to (kept unchanged).
    finishing: PointerProperty(type=HYMOTION_PG_finishing)  # type: ignore[valid-type]
    raw_action: PointerProperty(name="Raw action", type=bpy.types.Action)  # type: ignore[valid-type]
    # Retargeting (issue #9): this take's Action on each artist rig it was applied to.
    rig_actions: CollectionProperty(type=rig_props.HYMOTION_PG_rig_take)  # type: ignore[valid-type]
    # Direction (issue #11): the take's frame of its first given pose (-1: none); on a rig the
    # take stands there as that pose alone would (``retarget.TakeMotion.anchor_frame``).
    anchor_frame: IntProperty(name="Anchor frame", default=-1)  # type: ignore[valid-type]


class HYMOTION_PG_settings(bpy.types.PropertyGroup):
    prompt: StringProperty(  # type: ignore[valid-type]
        name="Prompt",
        description="What the character does, in English",
        maxlen=_LIMITS.max_prompt_chars,
    )
    duration_s: FloatProperty(  # type: ignore[valid-type]
        name="Duration", description="Length of the clip", unit="TIME_ABSOLUTE",
        default=4.0, min=_LIMITS.min_duration_s, max=_LIMITS.max_duration_s, precision=2,
    )  # fmt: skip
    candidates: IntProperty(  # type: ignore[valid-type]
        name="Candidates", description="How many takes to generate for this prompt",
        default=4, min=1, max=_LIMITS.max_candidates,
    )  # fmt: skip
    seed_mode: EnumProperty(  # type: ignore[valid-type]
        name="Seed",
        items=[
            ("RANDOM", "Random", "Draw a new seed for every request"),
            ("FIXED", "Fixed", "Use the seed below (candidate k uses seed + k)"),
        ],
        default="RANDOM",
    )
    seed: IntProperty(  # type: ignore[valid-type]
        name="Seed value", default=0, min=0, max=messages.MAX_SEED,
        description=f"First seed; candidate k uses seed + k, every one at most {messages.MAX_SEED}",
    )  # fmt: skip
    guidance: FloatProperty(  # type: ignore[valid-type]
        name="Guidance", description="How strictly the motion follows the prompt",
        default=5.0, min=_LIMITS.min_guidance, max=_LIMITS.max_guidance,
    )  # fmt: skip
    steps: IntProperty(  # type: ignore[valid-type]
        name="Steps", description="Sampler steps: more is slower and smoother",
        default=50, min=_LIMITS.min_steps, max=_LIMITS.max_steps,
    )  # fmt: skip
    target: EnumProperty(name="Target", items=TARGETS, default="NEW_ARMATURE")  # type: ignore[valid-type]
    side_by_side: BoolProperty(  # type: ignore[valid-type]
        name="Side by side", description="Show all new candidates next to each other", default=True
    )
    spacing: FloatProperty(  # type: ignore[valid-type]
        name="Spacing", description="Distance between compared takes", default=1.0, min=0.1,
        unit="LENGTH",
    )  # fmt: skip
    armature: PointerProperty(name="Armature", type=bpy.types.Object, poll=_is_armature)  # type: ignore[valid-type]
    takes: CollectionProperty(type=HYMOTION_PG_take)  # type: ignore[valid-type]
    # Retargeting (issue #9): the artist's character, options and bone mapping.
    retarget: PointerProperty(type=rig_props.HYMOTION_PG_retarget)  # type: ignore[valid-type]
    active_take: IntProperty(name="Take", default=0)  # type: ignore[valid-type]
    export_format: EnumProperty(  # type: ignore[valid-type]
        name="Format",
        items=[
            ("FBX", "FBX", "Blender's FBX exporter"),
            ("BVH", "BVH", "Y-up BVH"),
            ("BOTH", "FBX + BVH", "Both files"),
        ],
        default="FBX",
    )
    # Runtime status, written by the poll timer and drawn by the panel.
    status_state: StringProperty(default="idle")  # type: ignore[valid-type]
    status_message: StringProperty()  # type: ignore[valid-type]
    status_hint: StringProperty()  # type: ignore[valid-type]
    progress: FloatProperty(min=0.0, max=1.0, subtype="FACTOR")  # type: ignore[valid-type]
    server_line: StringProperty()  # type: ignore[valid-type]


classes = (HYMOTION_PG_finishing, HYMOTION_PG_take, HYMOTION_PG_settings)


_register_classes, _unregister_classes = class_registrar(classes)


def scene_settings(scene: bpy.types.Scene) -> HYMOTION_PG_settings:
    """The add-on's data on ``scene``: ``Scene.hy_motion`` is registered at runtime (below), so
    the type stubs cannot know it; this is the one place that reaches it."""
    return scene.hy_motion  # type: ignore[attr-defined]


def active_take(settings: HYMOTION_PG_settings) -> HYMOTION_PG_take | None:
    """The take selected in the Takes list, or None when the list is empty."""
    if 0 <= settings.active_take < len(settings.takes):
        return settings.takes[settings.active_take]
    return None


def register() -> None:
    rig_props.register()
    _register_classes()
    bpy.types.Scene.hy_motion = PointerProperty(type=HYMOTION_PG_settings)  # type: ignore[attr-defined,func-returns-value]


def unregister() -> None:
    del bpy.types.Scene.hy_motion  # type: ignore[attr-defined]
    _unregister_classes()
    rig_props.unregister()
