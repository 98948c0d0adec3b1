"""The batch's finishing flags (no bpy): argparse options -> ``FinishOptions``."""

from __future__ import annotations

import argparse

from ..errors import BatchInputError, FinishingError
from .footlock import MODES
from .loop import BLEND_FRAMES
from .options import FinishOptions


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "finishing", "applied to every take before it is saved and exported (docs/addon.md)"
    )
    group.add_argument("--foot-lock", default="off", choices=[m.lower() for m in MODES],
                       help="planted feet (%(default)s)")  # fmt: skip
    group.add_argument("--in-place", action="store_true", help="remove the travel")
    # The flags that refine another one have no default value, so that one given without the
    # flag it refines is refused rather than ignored (``_refinements_need_their_flag``).
    group.add_argument("--in-place-axes", default=None,
                       help="with --in-place: comma list of x (sideways), z (forward), y "
                       "(height) (x,z)")  # fmt: skip
    group.add_argument("--no-keep-facing", action="store_true",
                       help="with --in-place: remove turning about the vertical too")  # fmt: skip
    group.add_argument("--root-bone", action="store_true",
                       help="travel and turning on a root bone named 'root' (the built-in "
                       "armature; on --target-rig use --root-motion root_bone)")  # fmt: skip
    group.add_argument("--loop", action="store_true",
                       help="trim to the best loop and blend its seam")  # fmt: skip
    group.add_argument("--loop-blend", type=int, default=None,
                       help=f"with --loop: frames cross-faded at the loop's start "
                       f"({BLEND_FRAMES})")  # fmt: skip
    group.add_argument("--trim", default="", metavar="FIRST:LAST",
                       help="frames kept, 1-based inclusive; either side may be empty")  # fmt: skip
    group.add_argument("--ease-in", type=int, default=0, help="frames eased in from the pose")
    group.add_argument("--ease-out", type=int, default=0, help="frames eased out to the pose")
    # Default None, shown as rest: a given --ease-pose needs --ease-in or --ease-out.
    group.add_argument("--ease-pose", default=None, metavar="rest|frame:N",
                       help="the pose eased from/to: the rest pose or the take's frame N "
                       "(rest)")  # fmt: skip


#: The flag that sets each option (``FinishOptions`` names its fields in its refusals).
FLAG_OF_OPTION = {"loop_blend": "--loop-blend", "trim_start": "--trim", "trim_end": "--trim",
                  "ease_in": "--ease-in", "ease_out": "--ease-out",
                  "loop": "--loop with --ease-in/--ease-out", "in_place": "--in-place-axes",
                  "foot_lock": "--foot-lock", "ease_pose": "--ease-pose",
                  "ease_frame": "--ease-pose"}  # fmt: skip


def options_from_args(args: argparse.Namespace) -> FinishOptions:
    """The flags as options; a bad value raises ``BatchInputError`` naming the flag."""
    _refinements_need_their_flag(args)
    axes_text = "x,z" if args.in_place_axes is None else args.in_place_axes
    axes = {a.strip().lower() for a in axes_text.split(",") if a.strip()}
    if not axes <= {"x", "y", "z"}:
        raise BatchInputError(f"--in-place-axes takes x, y, z; got {axes_text!r}",
                              field="--in-place-axes")  # fmt: skip
    first, last = _trim(args.trim)
    pose, frame = _ease_pose(args.ease_pose or "rest")
    try:
        return FinishOptions(
            foot_lock=args.foot_lock.upper(), in_place=args.in_place, in_place_x="x" in axes,
            in_place_z="z" in axes, keep_height="y" not in axes,
            keep_facing=not args.no_keep_facing, root_bone=args.root_bone, loop=args.loop,
            loop_blend=BLEND_FRAMES if args.loop_blend is None else args.loop_blend,
            trim_start=first, trim_end=last, ease_in=args.ease_in,
            ease_out=args.ease_out, ease_pose=pose, ease_frame=frame,
        )  # fmt: skip
    except FinishingError as exc:  # no take exists yet: a usage error, named by its flag
        flag = FLAG_OF_OPTION.get(str(exc.details.get("field")), "a finishing flag")
        raise BatchInputError(f"{flag}: {exc.message}", field=flag.split()[0]) from exc


def _refinements_need_their_flag(args: argparse.Namespace) -> None:
    """A flag that only refines another one, given without it, would change nothing."""
    for flag, given, needs, present in (
        ("--in-place-axes", args.in_place_axes is not None, "--in-place", args.in_place),
        ("--no-keep-facing", args.no_keep_facing, "--in-place", args.in_place),
        ("--loop-blend", args.loop_blend is not None, "--loop", args.loop),
        ("--ease-pose", args.ease_pose is not None, "--ease-in or --ease-out",
         args.ease_in or args.ease_out),
    ):  # fmt: skip
        if given and not present:
            raise BatchInputError(f"{flag} needs {needs}; alone it would change nothing",
                                  field=flag)  # fmt: skip


def _trim(text: str) -> tuple[int, int]:
    if not text:
        return 0, 0
    first, sep, last = text.partition(":")
    try:
        if not sep:
            raise ValueError(text)
        return (int(first) if first else 0), (int(last) if last else 0)
    except ValueError:
        raise BatchInputError(f"--trim takes FIRST:LAST frame numbers; got {text!r}",
                              field="--trim") from None  # fmt: skip


def _ease_pose(text: str) -> tuple[str, int]:
    kind, _, number = text.lower().partition(":")
    if kind == "rest" and not number:
        return "REST", 1
    if kind == "frame" and number.isdigit():
        return "FRAME", int(number)
    raise BatchInputError(f"--ease-pose takes rest or frame:N; got {text!r}", field="--ease-pose")
