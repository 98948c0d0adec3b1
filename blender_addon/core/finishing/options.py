"""Finishing options: one frozen record shared by the panel, the batch and summary.json."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from ..errors import FinishingError
from .footlock import MODES
from .loop import BLEND_FRAMES
from .trim import EASE_POSES

TRAVEL_AXES = ("X", "Z")


@dataclass(frozen=True)
class FinishOptions:
    """What to do to a take; the defaults leave it as generated."""

    foot_lock: str = "OFF"  # AUTO, ALWAYS, GROUNDING, OFF
    in_place: bool = False
    in_place_x: bool = True  # remove sideways travel (model X)
    in_place_z: bool = True  # remove forward travel (model Z)
    keep_height: bool = True  # False: the pelvis height goes too (root-relative)
    keep_facing: bool = True  # False: turning about the vertical is removed as well
    #: The built-in armature carries the travel and turning on a root bone (``ROOT_BONE``).
    root_bone: bool = False
    loop: bool = False
    loop_blend: int = BLEND_FRAMES
    trim_start: int = 0  # first frame kept, 1-based; 0 = the take's first
    trim_end: int = 0  # last frame kept, 1-based; 0 = the take's last
    ease_in: int = 0  # frames
    ease_out: int = 0
    ease_pose: str = "REST"  # REST or FRAME
    ease_frame: int = 1  # with ease_pose FRAME: which frame of the take

    def __post_init__(self) -> None:
        if self.foot_lock not in MODES:
            raise FinishingError(f"unknown foot lock mode {self.foot_lock!r}",
                                 field="foot_lock", allowed=", ".join(MODES))  # fmt: skip
        if self.ease_pose not in EASE_POSES:
            raise FinishingError(f"unknown ease pose {self.ease_pose!r}", field="ease_pose",
                                 allowed=", ".join(EASE_POSES))  # fmt: skip
        for name in ("loop_blend", "trim_start", "trim_end", "ease_in", "ease_out"):
            if getattr(self, name) < 0:
                raise FinishingError(f"{name} must be 0 or more", field=name)
        if self.ease_frame < 1:
            raise FinishingError("ease_frame must be at least 1 (frames are 1-based)",
                                 field="ease_frame")  # fmt: skip
        if self.loop_blend < 1:
            raise FinishingError("loop_blend must be at least 1 frame", field="loop_blend")
        if self.loop and (self.ease_in or self.ease_out):
            raise FinishingError(
                "loop and ease cannot be used together: a loop's ends must meet each other, "
                "not a pose",
                field="loop",
            )
        if self.in_place and not (self.in_place_x or self.in_place_z or not self.keep_height
                                  or not self.keep_facing):  # fmt: skip
            raise FinishingError("in place removes nothing: choose an axis", field="in_place")

    @property
    def trims(self) -> bool:
        return bool(self.trim_start or self.trim_end)

    @property
    def active(self) -> bool:
        """Whether these options change a take at all."""
        return self != FinishOptions()

    def travel_axes(self) -> tuple[str, ...]:
        axes = [a for a, on in (("X", self.in_place_x), ("Z", self.in_place_z)) if on]
        return (*axes, *(() if self.keep_height else ("Y",)))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FinishOptions:
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise FinishingError(f"unknown finishing option {unknown[0]!r}", field=unknown[0],
                                 allowed=", ".join(known))  # fmt: skip
        return cls(**data)


#: The options that leave a take as generated.
NO_FINISHING = FinishOptions()
