"""Several takes on the artist's rig one step at a time (bpy): each step is one take's retarget
and write, complete or absent; Esc (cancel) and a take failing midway keep the finished takes,
leave nothing half-made and make no comparison; headless, the same job runs to the end.

Timers never tick in the bpy module (no event loop), so the tests drive the job's step function
themselves, as the modal operator does once per tick, and run the operator headless.
"""

from __future__ import annotations

from typing import Any

import bpy
import numpy as np
import pytest

from blender_addon import build, history, rig_history, rig_takes
from blender_addon.core import retarget
from blender_addon.core.channels import Channel
from blender_addon.core.errors import SceneError
from blender_addon.core.steps import Step, StepJob
from blender_addon.props import scene_settings
from tests.addon.test_retarget_history import character_scene, ours


def compared(scene: Any) -> list[str]:
    collection = bpy.data.collections.get(history.COMPARE_COLLECTION)
    return sorted(o.name for o in collection.objects) if collection is not None else []


def keys(action: Any) -> dict[tuple[str, int], np.ndarray]:
    curves = (
        action.layers[0].strips[0].channelbag(action.slots[0]).fcurves
        if build.IS_SLOTTED
        else action.fcurves
    )
    out = {}
    for curve in curves:
        co = np.empty(2 * len(curve.keyframe_points), dtype=np.float32)
        curve.keyframe_points.foreach_get("co", co)
        out[curve.data_path, curve.array_index] = co
    return out


def test_compare_writes_one_take_per_step(scene: Any) -> None:
    rig, takes, artist, _ = character_scene(scene)
    job = rig_history.compare_job(scene, takes)
    assert job.total == 4 and job.progress().endswith("(1 of 4)")
    for step in range(1, 4):
        assert job.step()
        assert len(ours(rig)) == step  # exactly one more take's Action, whole
        assert compared(scene) == []
    assert not job.step() and job.finished
    assert compared(scene) == sorted(f"Hero {t.name}" for t in takes)
    assert [c.animation_data.action for c in job.result] == [
        rig_history.record_for(t, rig).action for t in takes
    ]
    assert rig.animation_data.action == artist  # comparing leaves the rig's own action playing
    # A take written by a step has the keys it has when applied on its own.
    options = rig_history.options_of(scene_settings(scene).retarget)
    (alone,) = rig_takes.retarget_actions(rig, [rig_history.motion_of(takes[1])], options)
    stepped, single = keys(rig_history.record_for(takes[1], rig).action), keys(alone)
    assert stepped.keys() == single.keys()
    for curve, co in stepped.items():
        np.testing.assert_array_equal(co, single[curve], err_msg=str(curve))


def test_cancel_keeps_whole_takes_and_makes_no_comparison(scene: Any) -> None:
    rig, takes, artist, _ = character_scene(scene)
    job = rig_history.compare_job(scene, takes)
    assert job.step()
    job.cancel()  # Esc while the first take was written
    assert not job.step() and job.cancelled and job.done == 1
    assert ours(rig) == [rig_takes.action_name(takes[0].name, "Hero")]
    assert len(takes[1].rig_actions) == 0 and len(takes[2].rig_actions) == 0
    assert compared(scene) == [] and rig.animation_data.action == artist
    assert "cancelled" in job.outcome() and repr(takes[1].name) in job.outcome()
    # The next compare reuses the finished take: two takes and the comparison remain.
    again = rig_history.compare_job(scene, takes)
    assert again.total == 3
    again.run_to_end()
    assert len(ours(rig)) == 3 and len(compared(scene)) == 3


def test_a_take_failing_midway_stops_the_job_and_leaves_nothing_half_made(scene: Any) -> None:
    rig, takes, artist, _ = character_scene(scene)
    history.compare_takes(scene, [takes[2]])  # an earlier comparison stays as it was
    before = compared(scene)
    takes[1].action = None  # the artist deleted this take's action
    job = rig_history.compare_job(scene, takes)
    assert job.step()
    assert not job.step()
    assert job.failed is not None and job.failed.label == f"take {takes[1].name!r}"
    assert isinstance(job.error, SceneError) and "lost its action" in str(job.error)
    assert not job.step() and job.done == 1  # nothing after the failure runs
    names = ours(rig)
    assert rig_takes.action_name(takes[0].name, "Hero") in names
    assert not any(takes[1].name in n for n in names)  # no part of the failing take's Action
    assert compared(scene) == before and rig.animation_data.action == artist
    assert "failed" in job.outcome()
    with pytest.raises(SceneError, match="lost its action"):
        rig_history.compare_job(scene, takes).run_to_end()


def test_compare_operator_headless_runs_every_step(scene: Any) -> None:
    rig, takes, artist, _ = character_scene(scene)
    assert bpy.ops.hy_motion.compare_takes(scope="ALL") == {"FINISHED"}
    assert len(ours(rig)) == 3 and len(compared(scene)) == 3
    assert rig.animation_data.action == artist
    takes[0].action = None
    settings = scene_settings(scene)
    settings.retarget.root_motion = "IN_PLACE"  # every take is stale: remade, take 0 fails
    with pytest.raises(RuntimeError, match="lost its action"):
        bpy.ops.hy_motion.compare_takes(scope="ALL")
    assert len(ours(rig)) == 3  # the stale Actions stay until a step replaces them whole


def test_a_failed_write_leaves_no_action() -> None:
    co = np.array([1.0, 0.0, 2.0, 1.0], dtype=np.float32)
    twice = [Channel("location", 0, "x", co), Channel("location", 0, "x", co)]
    before = set(bpy.data.actions)
    with pytest.raises(RuntimeError):  # Blender refuses a second curve for the same channel
        build.write_action("HYM broken", twice)
    assert set(bpy.data.actions) == before


@pytest.mark.skipif(not build.IS_SLOTTED, reason="slotted actions: Blender 4.4+")
def test_copied_curves_equal_new_curves(scene: Any) -> None:
    """5.0+ writes curves by copying a template; every property matches a curve made new."""
    rig, takes, _, _ = character_scene(scene)
    writer = rig_takes.RigWriter(rig, retarget.RetargetOptions())
    reference = writer.action(rig_history.motion_of(takes[0]))
    bag = reference.layers[0].strips[0].channelbag(reference.slots[0])
    channels = []
    for curve in bag.fcurves:
        co = np.empty(2 * len(curve.keyframe_points), dtype=np.float32)
        curve.keyframe_points.foreach_get("co", co)
        channels.append(Channel(curve.data_path, curve.array_index, curve.group.name, co))
    if not hasattr(bag.fcurves, "new_from_fcurve"):
        pytest.skip("no FCurve copy before Blender 5.0: new curves are the only way")
    made = {}
    for writer_function in (build.write_new_curves, build.write_copied_curves):
        action = bpy.data.actions.new(writer_function.__name__)
        writer_function(build._new_channelbag(action), channels)
        made[writer_function.__name__] = action.layers[0].strips[0].channelbag(action.slots[0])
    new, copied = made["write_new_curves"].fcurves, made["write_copied_curves"].fcurves
    assert [(c.data_path, c.array_index) for c in new] == [
        (c.data_path, c.array_index) for c in copied
    ]
    curve_props = ("group", "extrapolation", "select", "hide", "lock", "mute", "color_mode",
                   "auto_smoothing", "is_valid", "is_empty")  # fmt: skip
    key_props = ("co", "handle_left", "handle_right", "interpolation", "handle_left_type",
                 "handle_right_type", "easing", "type", "select_control_point")  # fmt: skip
    for a, b in zip(new, copied, strict=True):
        for prop in curve_props:
            left, right = getattr(a, prop), getattr(b, prop)
            if prop == "group":
                left, right = left.name, right.name
            assert left == right, (a.data_path, prop)
        assert len(a.keyframe_points) == len(b.keyframe_points)
        for ka, kb in zip(a.keyframe_points, b.keyframe_points, strict=True):
            for prop in key_props:
                assert np.all(np.array(getattr(ka, prop)) == np.array(getattr(kb, prop))), prop
    assert [g.name for g in made["write_new_curves"].groups] == [
        g.name for g in made["write_copied_curves"].groups
    ]


def test_step_job_reports_what_ran() -> None:
    ran: list[str] = []
    job = StepJob("Job", [Step(n, lambda n=n: ran.append(n) or n) for n in ("a", "b", "c")])
    assert job.progress() == "Job: a (1 of 3)"
    assert job.step() and job.step() and not job.step()
    assert job.finished and job.result == "c" and ran == ["a", "b", "c"]
    assert job.outcome() == "Job: done (3 steps)"
    job.cancel()  # after the end: nothing to stop
    assert not job.cancelled

    def refuse() -> None:
        raise SceneError("no motion", field="take")

    job = StepJob("Job", [Step("a", lambda: ran.append("a2")), Step("b", refuse), Step("c", list)])
    with pytest.raises(SceneError, match="no motion"):
        job.run_to_end()
    assert job.done == 1 and job.failed is job.steps[1] and job.over
    assert job.outcome() == "Job: b failed; done and kept: a; not done: c"
