"""The batch's finishing flags: a bad value or combination is refused naming its flag."""

from __future__ import annotations

import argparse

import pytest

from blender_addon.core.errors import BatchInputError
from blender_addon.core.finishing import cli


def options(*argv: str):
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return cli.options_from_args(parser.parse_args(list(argv)))


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--loop", "--loop-blend", "-3"], "--loop-blend"),
        (["--loop", "--loop-blend", "0"], "--loop-blend"),
        (["--ease-in", "-2"], "--ease-in"),
        (["--ease-out", "-1"], "--ease-out"),
        (["--loop", "--ease-in", "5"], "--loop"),
        (["--in-place", "--in-place-axes", ","], "--in-place-axes"),
        (["--in-place-axes", "q"], "--in-place-axes"),
        (["--trim", "3"], "--trim"),
        (["--trim=-4:"], "--trim"),
        (["--ease-in", "3", "--ease-pose", "frame:x"], "--ease-pose"),
        (["--ease-in", "3", "--ease-pose", "frame:0"], "--ease-pose"),  # 1-based
        # A flag that refines another one, alone: refused, not ignored.
        (["--in-place-axes", "x"], "--in-place-axes"),
        (["--no-keep-facing"], "--no-keep-facing"),
        (["--loop-blend", "5"], "--loop-blend"),
        (["--ease-pose", "frame:3"], "--ease-pose"),
    ],
)
def test_bad_flag_is_a_usage_error_naming_the_flag(argv: list[str], flag: str) -> None:
    with pytest.raises(BatchInputError) as refused:
        options(*argv)
    assert refused.value.message.startswith(flag)
    assert refused.value.details["field"] == flag


def test_good_flags_make_the_options() -> None:
    finish = options("--foot-lock", "always", "--loop", "--loop-blend", "8", "--trim", "5:")
    assert (finish.foot_lock, finish.loop, finish.loop_blend) == ("ALWAYS", True, 8)
    assert (finish.trim_start, finish.trim_end) == (5, 0)


def test_refining_flags_with_the_flag_they_refine() -> None:
    finish = options("--in-place", "--in-place-axes", "x,y", "--no-keep-facing")
    assert (finish.in_place_x, finish.in_place_z, finish.keep_height) == (True, False, False)
    assert not finish.keep_facing
    eased = options("--ease-out", "4", "--ease-pose", "frame:3")
    assert (eased.ease_pose, eased.ease_frame) == ("FRAME", 3)
    assert options().loop_blend == options("--loop").loop_blend == 12


def test_help_states_the_defaults_docs_addon_md_states() -> None:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    text = " ".join(parser.format_help().split())
    assert "planted feet (off)" in text and "cross-faded at the loop's start (12)" in text
    assert "the rest pose or the take's frame N (rest)" in text  # not argparse's "(None)"
    assert "(None)" not in text
