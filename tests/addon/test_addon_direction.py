"""The panel's Direction (issue #11): options -> constraints, and the artist's case end to end
on the real tiny engine: start from the current pose, land on a keyed pose at a frame."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from blender_addon import build, history, prefs
from blender_addon.core import directing
from blender_addon.core.motion import rotations as rot
from blender_addon.core.session import ServerInfo
from shared_protocol import TimelineRow
from tests.addon import retarget_checks
from tests.addon.test_addon_scene import make_result

ANGLE_TOL_DEG = 0.5
POSITION_TOL_M = 1e-3


def _motion(frames: int = 60) -> tuple[np.ndarray, np.ndarray]:
    result = make_result(1, frames)
    return result.rotations[0].astype(np.float64), result.root_positions[0].astype(np.float64)


def test_current_pose_end_key_curve_and_timeline_become_constraints() -> None:
    rotations, pelvis = _motion()
    c = directing.panel_constraints(
        rotations=rotations, pelvis=pelvis, take_start=1, start="CURRENT", current_frame=11,
        end_frame=41, loop=False, curve_points=np.array([[0.0, 0.0], [0.0, 3.0], [4.0, 3.0]]),
        timeline=(TimelineRow("a person waves", 2.0),), clip_frames=120,
    )  # fmt: skip
    assert c is not None and c.pose_frames is not None and c.path_frames is not None
    assert c.pose_frames.tolist() == [0, 30]  # scene frames 11 and 41, the clip starts at 11
    assert np.allclose(c.pose_rotations, rotations[[10, 40]])
    assert np.allclose(c.pose_root_positions, pelvis[[10, 40]])
    # the curve is spread by arc length from frame 1 (after the one-frame prefix) to the end
    assert c.path_frames[0] == 1 and c.path_frames[-1] == 119
    assert np.allclose(c.path_points[0], [0, 0]) and np.allclose(c.path_points[-1], [4, 3])
    halfway = np.interp(60, c.path_frames, c.path_points[:, 0])
    assert halfway == pytest.approx(0.5, abs=0.05)  # half of the 7 m: 3 m along z, 0.5 m along x
    assert c.timeline == (TimelineRow("a person waves", 2.0),)


def test_end_of_take_and_nothing_directed() -> None:
    rotations, pelvis = _motion(40)
    c = directing.panel_constraints(
        rotations=rotations, pelvis=pelvis, take_start=1, start="TAKE_END", current_frame=1,
        end_frame=None, loop=True, curve_points=None, timeline=(), clip_frames=90,
    )  # fmt: skip
    assert c is not None and c.loop and c.pose_frames is not None
    assert c.pose_frames.tolist() == list(range(15))
    assert np.allclose(c.pose_rotations, rotations[-15:])
    free = directing.panel_constraints(
        rotations=None, pelvis=None, take_start=1, start="NONE", current_frame=1,
        end_frame=None, loop=False, curve_points=None, timeline=(), clip_frames=90,
    )  # fmt: skip
    assert free is None


def test_a_key_outside_the_take_names_the_field() -> None:
    rotations, pelvis = _motion(30)
    with pytest.raises(directing.DirectionError) as err:
        directing.panel_constraints(
            rotations=rotations, pelvis=pelvis, take_start=1, start="NONE", current_frame=1,
            end_frame=90, loop=False, curve_points=None, timeline=(), clip_frames=90,
        )  # fmt: skip
    assert err.value.details["field"] == "end_frame" and "outside the active take" in str(err.value)


@pytest.fixture
def tiny_daemon(start_daemon: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    # The real tiny engine in its own process on .venv, so this runs under every bpy venv.
    handle = start_daemon(real_engine=True)
    monkeypatch.setenv(prefs.ADDRESS_ENV, handle.address)
    yield handle


@pytest.mark.slow
def test_start_from_the_current_pose_and_land_on_a_keyed_pose(scene: Any, tiny_daemon: Any) -> None:
    """An artist's take plays on the armature; at frame 11 they press Generate with "Start:
    Current Pose" and "End on Pose" at frame 41: the new take starts in the frame-11 pose and
    holds the frame-41 pose 30 frames later."""
    (source,) = history.add_result(scene, make_result(1, 60), ServerInfo())
    history.apply_take(scene, source)
    _, rotations, pelvis = build.read_motion(source.action, source.armature)
    take = retarget_checks.generate_from_pose_to_key(scene, 11, 41)
    assert take.frames == 60
    _, new_rotations, new_pelvis = build.read_motion(take.action, take.armature)
    for clip_frame, scene_frame in ((0, 11), (30, 41)):
        got, want = new_rotations[clip_frame], rotations[scene_frame - 1]
        assert np.degrees(rot.angle_between(got, want)).max() < ANGLE_TOL_DEG
        assert np.abs(new_pelvis[clip_frame] - pelvis[scene_frame - 1]).max() < POSITION_TOL_M
