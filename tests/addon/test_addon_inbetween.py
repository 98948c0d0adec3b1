"""The panel's In-between (issue #11): the motion between two keyed poses of the active take, or
from one take's end into another's start, end to end through the Generate operator on the real
tiny engine, with the clean-up meeting every held frame; and its refusals in plain words."""

from __future__ import annotations

import math
from typing import Any

import bpy
import numpy as np
import pytest

from blender_addon import build, directing_ui, history, prefs
from blender_addon.core import directing
from blender_addon.core.session import ServerInfo
from blender_addon.core.settings import GenerateSettings
from tests.addon.conftest import StartDaemon
from tests.addon.test_addon_daemon import set_panel
from tests.addon.test_addon_scene import make_result

ANGLE_TOL_DEG = 0.5
POSITION_TOL_M = 1e-3


def _angles_deg(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    dot = np.clip(np.abs((got * want).sum(-1)), 0.0, 1.0)
    return np.degrees(2 * np.arccos(dot))


def _assert_held(got: tuple[np.ndarray, np.ndarray], want: tuple[np.ndarray, np.ndarray]) -> None:
    """Rotations (F, J, 4) within 0.5° and pelvis (F, 3) within 1 mm, frame for frame."""
    assert _angles_deg(got[0], want[0]).max() < ANGLE_TOL_DEG
    assert np.abs(got[1] - want[1]).max() < POSITION_TOL_M


def _motion(take: Any) -> tuple[np.ndarray, np.ndarray]:
    _, rotations, pelvis = build.read_motion(take.action, take.armature)
    return rotations, pelvis


@pytest.fixture
def engine(start_daemon: StartDaemon, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real tiny engine in its own process on .venv (so this runs under every bpy venv)."""
    monkeypatch.setenv(prefs.ADDRESS_ENV, start_daemon(real_engine=True).address)


@pytest.mark.slow
def test_between_two_keyed_poses_the_take_spans_exactly_those_frames(
    scene: Any, engine: None
) -> None:
    """The artist keys their own elbow pose at frame 50 on a take, asks for the motion between
    frames 10 and 50: the new take has 41 frames, starts in the frame-10 pose and ends in the
    frame-50 pose with the artist's key."""
    (source,) = history.add_result(scene, make_result(1, 60), ServerInfo())
    obj = history.apply_take(scene, source)
    generated = _motion(source)
    elbow = obj.pose.bones["L_Elbow"]
    scene.frame_set(50)
    elbow.rotation_quaternion = (math.cos(0.6), math.sin(0.6), 0.0, 0.0)  # 69° about X
    elbow.keyframe_insert("rotation_quaternion", frame=50)
    keyed = _motion(source)
    joint = build.armature_skeleton(source.armature).joint_names.index("L_Elbow")
    assert _angles_deg(keyed[0][49, joint], generated[0][49, joint]) > 10  # the key is the artist's
    options = directing_ui.direction(scene)
    options.inbetween, options.inbetween_from, options.inbetween_to = "KEYS", 10, 50
    set_panel(scene, duration_s=5.0, steps=4, candidates=1)  # the span decides the duration
    assert bpy.ops.hy_motion.generate() == {"FINISHED"}, scene.hy_motion.status_message
    take = scene.hy_motion.takes[-1]
    assert take.frames == 41
    rotations, pelvis = _motion(take)
    assert rotations.shape[0] == 41
    _assert_held((rotations[[0, 40]], pelvis[[0, 40]]), (keyed[0][[9, 49]], keyed[1][[9, 49]]))


@pytest.mark.slow
def test_from_the_end_of_one_take_into_the_start_of_another(scene: Any, engine: None) -> None:
    first, second = history.add_result(scene, make_result(2, 60), ServerInfo())
    history.apply_take(scene, first)  # the active take: the one the new take continues
    before, after = _motion(first), _motion(second)
    options = directing_ui.direction(scene)
    options.inbetween, options.inbetween_take = "TAKES", second.name
    set_panel(scene, duration_s=2.0, steps=4, candidates=1)
    assert bpy.ops.hy_motion.generate() == {"FINISHED"}, scene.hy_motion.status_message
    rotations, pelvis = _motion(scene.hy_motion.takes[-1])
    assert rotations.shape[0] == 60
    hold = directing.PREFIX_FRAMES
    _assert_held((rotations[:hold], pelvis[:hold]), (before[0][-hold:], before[1][-hold:]))
    # The Into take is held moved on the ground to where the first one's speed carries it.
    _, move = directing.inbetween_takes(before, after, 60)
    speed = (before[1][-1] - before[1][-hold]) / (hold - 1)
    travel = (pelvis[-hold] - pelvis[hold - 1])[[0, 2]]  # over the 31 frames between
    assert np.allclose(travel, (speed * 31)[[0, 2]], atol=POSITION_TOL_M)
    _assert_held((rotations[-hold:], pelvis[-hold:]), (after[0][:hold], after[1][:hold] + move))


def test_in_between_refusals_name_what_to_change(scene: Any) -> None:
    (source,) = history.add_result(scene, make_result(1, 60), ServerInfo())
    history.apply_take(scene, source)
    options = directing_ui.direction(scene)
    settings = GenerateSettings("walk", 2.0, candidates=1, guidance=5.0, steps=4)

    def refusal() -> directing.DirectionError:
        with pytest.raises(directing.DirectionError) as caught:
            directing_ui.directed_settings(scene, settings)
        return caught.value

    options.inbetween, options.start = "KEYS", "CURRENT"
    error = refusal()
    assert error.details["field"] == "inbetween" and str(error).startswith(
        "In-between sets both ends of the new take: set Start to Free"
    )
    options.start = "NONE"
    options.inbetween_from, options.inbetween_to = 10, 5
    error = refusal()
    assert error.details["field"] == "inbetween_to"
    assert "spans -4 frames; the model generates 20 to 360" in str(error)
    options.inbetween_from, options.inbetween_to = 10, 70
    error = refusal()
    assert error.details["field"] == "inbetween_to" and "outside the active take" in str(error)
    options.inbetween = "TAKES"
    assert refusal().details["field"] == "inbetween_take"
    options.inbetween_take = "no such take"
    assert "there is no take named 'no such take'" in str(refusal())
    options.inbetween_take = source.name
    settings = GenerateSettings("walk", 1.0, candidates=1, guidance=5.0, steps=4)
    error = refusal()
    assert error.details["field"] == "duration_s" and "needs more than 30 frames" in str(error)
    # Through the operator: refused before anything is sent, no take added.
    set_panel(scene, duration_s=1.0, steps=4, candidates=1)
    takes = len(scene.hy_motion.takes)
    with pytest.raises(RuntimeError, match="needs more than 30 frames"):
        bpy.ops.hy_motion.generate()
    assert len(scene.hy_motion.takes) == takes
