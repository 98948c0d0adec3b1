"""Re-baking a finished take and exporting several takes, one write per step (bpy): the take's
own Action first, then one character playing it per step; exports retarget one take per step,
then write one take's files per step. Cancel and a failing step keep the finished steps and
leave nothing half-written; headless, the same steps run to the end, and the exported files are
the files one call per take (the blocking path) writes.

Timers never tick in the bpy module, so the tests drive ``StepJob.step`` themselves, as the
modal operator does once per tick (see test_retarget_steps.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bpy
import numpy as np
import pytest

from blender_addon import build, history, rig_history, rig_takes, step_runner, take_finishing
from blender_addon.core.errors import PresetError
from blender_addon.props import scene_settings
from tests.addon import rigs
from tests.addon.test_retarget_history import character_scene
from tests.addon.test_retarget_steps import keys


def two_characters_playing(scene: Any) -> tuple[Any, Any, list[Any]]:
    """Take 0 applied onto "Hero" (Mixamo) and onto "Scout" (UE5), both playing it."""
    hero, takes, _, _ = character_scene(scene)
    history.apply_take(scene, takes[0])
    scout = rigs.build_armature(scene, rigs.rig_bones("UE5", rigs.CHILD_A), "Scout")
    scene_settings(scene).retarget.rig = scout
    history.apply_take(scene, takes[0])
    return hero, scout, takes


def trimmed(take: Any, start: int = 5, end: int = 30) -> None:
    """Set a trim without re-baking (as a toggle does before its update queues the job)."""
    with take_finishing.quiet():
        take.finishing.trim_start, take.finishing.trim_end = start, end


def playing(obj: Any) -> Any:
    return obj.animation_data.action


def same_keys(a: Any, b: dict[Any, np.ndarray]) -> bool:
    """Whether Action ``a`` holds exactly the keys ``b`` (``keys`` of an Action)."""
    now = keys(a)
    return now.keys() == b.keys() and all(np.array_equal(now[c], b[c]) for c in now)


def test_rebake_writes_one_action_per_step(scene: Any) -> None:
    hero, scout, takes = two_characters_playing(scene)
    take = takes[0]
    before = {hero: playing(hero), scout: playing(scout)}
    own_keys = keys(take.action)
    trimmed(take)
    job = take_finishing.refinish_job(scene, take)
    assert [s.label for s in job.steps] == [f"take {take.name!r}", "on 'Hero'", "on 'Scout'"]
    assert job.progress() == f"Finishing {take.name!r}: take {take.name!r} (1 of 3)"
    actions = set(bpy.data.actions)

    assert job.step()  # the take's own Action, re-baked in place; no character touched
    assert not same_keys(take.action, own_keys) and build.action_frames(take.action) == (1, 26)
    assert set(bpy.data.actions) - actions == {take.raw_action}  # the raw take, kept once
    assert playing(hero) == before[hero] and playing(scout) == before[scout]

    actions = set(bpy.data.actions)
    assert job.step()  # Hero's Action remade: one new Action, the old one gone
    assert set(bpy.data.actions) - actions == {playing(hero)}
    assert before[hero] not in set(bpy.data.actions)
    assert build.action_frames(playing(hero)) == (1, 26)
    assert playing(scout) == before[scout]  # Scout not yet

    actions = set(bpy.data.actions)
    assert not job.step() and job.finished
    assert set(bpy.data.actions) - actions == {playing(scout)}
    assert build.action_frames(playing(scout)) == (1, 26)
    assert job.results[0]["frames_out"] == 26  # the report, from the first step


def test_cancel_keeps_the_rebaked_steps_and_stale_characters_catch_up(scene: Any) -> None:
    hero, scout, takes = two_characters_playing(scene)
    take = takes[0]
    scout_before = playing(scout)
    scout_keys = keys(scout_before)
    trimmed(take)
    job = take_finishing.refinish_job(scene, take)
    assert job.step() and job.step()
    job.cancel()  # Esc while Hero's Action was written
    assert not job.step() and job.cancelled and job.done == 2
    assert build.action_frames(playing(hero)) == (1, 26)
    assert playing(scout) == scout_before and same_keys(scout_before, scout_keys)  # untouched
    assert "not done: on 'Scout'" in job.outcome()
    # Re-bake again: Hero is current (its step only plays on), Scout is remade.
    actions = set(bpy.data.actions)
    hero_action = playing(hero)
    take_finishing.refinish_job(scene, take).run_to_end()
    assert playing(hero) == hero_action
    assert set(bpy.data.actions) - actions == {playing(scout)}
    assert build.action_frames(playing(scout)) == (1, 26)


def test_a_failing_character_keeps_the_steps_before_and_half_writes_nothing(scene: Any) -> None:
    hero, scout, takes = two_characters_playing(scene)
    take = takes[0]
    scout_before = playing(scout)
    scout[rig_takes.MAPPING_KEY] = '{"convention": "mixamo", "bones": {"Pelvis": "nope"}}'
    trimmed(take)
    job = take_finishing.refinish_job(scene, take)
    actions = set(bpy.data.actions)
    assert job.step() and job.step()
    assert not job.step() and job.failed is job.steps[2]
    assert isinstance(job.error, PresetError) and "Scout" in str(job.error)
    assert build.action_frames(playing(hero)) == (1, 26)
    assert playing(scout) == scout_before  # the failing step wrote no part of an Action
    made = set(bpy.data.actions) - actions
    assert made == {take.raw_action, playing(hero)}


def test_a_refused_option_stops_before_any_write(scene: Any) -> None:
    hero, scout, takes = two_characters_playing(scene)
    take = takes[0]
    own, hero_before, scout_before = keys(take.action), playing(hero), playing(scout)
    actions = set(bpy.data.actions)
    trimmed(take, 30, 5)  # end before start: refused
    job = take_finishing.refinish_job(scene, take)
    assert not job.step() and job.failed is job.steps[0] and job.done == 0
    assert "trim" in take.finishing.status  # shown on the take by the step
    assert same_keys(take.action, own) and set(bpy.data.actions) == actions
    assert (playing(hero), playing(scout)) == (hero_before, scout_before)


def test_toggles_and_the_operator_headless_run_every_step(scene: Any) -> None:
    hero, scout, takes = two_characters_playing(scene)
    take = takes[0]
    assert not step_runner.has_window()  # the bpy module: no window, so nothing is queued
    take.finishing.trim_start, take.finishing.trim_end = 5, 30  # the update runs the job
    assert build.action_frames(playing(hero)) == build.action_frames(playing(scout)) == (1, 26)
    assert step_runner._queued == []
    trimmed(take, 0, 0)
    assert bpy.ops.hy_motion.finish_take(index=0) == {"FINISHED"}
    assert build.action_frames(playing(hero)) == build.action_frames(playing(scout)) == (1, 40)
    trimmed(take, 30, 5)
    with pytest.raises(RuntimeError, match="trim"):  # the refusal is the operator's error
        bpy.ops.hy_motion.finish_take(index=0)
    assert build.action_frames(playing(hero)) == (1, 40)


def test_a_take_on_no_character_is_one_step(scene: Any) -> None:
    _, takes, _, _ = character_scene(scene)
    assert take_finishing.refinish_job(scene, takes[1]).total == 1


def _same_fbx(a: Path, b: Path) -> bool:
    """Byte-equal FBX files but for the header's creation time stamp."""
    x, y = a.read_bytes(), b.read_bytes()

    def without_stamp(data: bytes) -> bytes:
        start = data.index(b"CreationTimeStamp")
        end = data.index(b"Millisecond", start) + len(b"Millisecond") + 5  # 'I' + int32
        return data[:start] + data[end:]

    return without_stamp(x) == without_stamp(y)


@pytest.mark.parametrize("target", ["SELECTED_ARMATURE", "NEW_ARMATURE"])
def test_export_writes_one_take_per_step_as_the_blocking_path_does(
    scene: Any, tmp_path: Path, target: str
) -> None:
    _, takes, _, _ = character_scene(scene)
    settings = scene_settings(scene)
    settings.target = target
    formats = ("FBX", "BVH")
    job = history.export_job(scene, takes, tmp_path / "steps", formats)
    on_rig = target == "SELECTED_ARMATURE"
    assert job.total == (6 if on_rig else 3)
    if on_rig:  # one retarget per step first, then one take's files per step
        for step in range(1, 4):
            assert job.step()
            assert len(takes[step - 1].rig_actions) == 1 and not (tmp_path / "steps").exists()
    for step in range(3):
        job.step()
        written = sorted(p.name for p in (tmp_path / "steps").iterdir())
        expected = history.planned_files(takes[: step + 1], tmp_path / "steps", formats)
        assert written == sorted(p.name for p in expected)
    assert job.finished and job.outcome() == f"Wrote 6 file(s) to {tmp_path / 'steps'}"
    # The blocking path: one export_take per take, as the panel did before.
    for take in takes:
        history.export_take(scene, take, tmp_path / "blocking", formats)
    for path in history.planned_files(takes, tmp_path / "steps", formats):
        other = tmp_path / "blocking" / path.name
        if path.suffix == ".bvh":
            assert path.read_bytes() == other.read_bytes(), path.name
        else:
            assert _same_fbx(path, other), path.name


def test_export_cancel_and_failure_keep_whole_files(scene: Any, tmp_path: Path) -> None:
    _, takes, _, _ = character_scene(scene)
    job = history.export_job(scene, takes, tmp_path, ("FBX", "BVH"))
    for _ in range(4):  # three retargets, then the first take's files
        assert job.step()
    job.cancel()
    assert not job.step() and job.cancelled
    first = sorted(p.name for p in history.planned_files(takes[:1], tmp_path, ("FBX", "BVH")))
    assert sorted(p.name for p in tmp_path.iterdir()) == first  # no .part file left
    assert all(len(t.rig_actions) == 1 for t in takes)  # retargets kept for the next export
    # Again without overwrite: the existing file stops the job at the first take's files.
    again = history.export_job(scene, takes, tmp_path, ("FBX", "BVH"))
    assert again.total == 3  # the retargets are current: files only
    assert not again.step() and again.failed is again.steps[0]
    assert "already exists" in str(again.error)
    assert sorted(p.name for p in tmp_path.iterdir()) == first


def test_export_operator_headless_runs_every_step(scene: Any, tmp_path: Path) -> None:
    _, takes, _, _ = character_scene(scene)
    scene_settings(scene).export_format = "BOTH"
    result = bpy.ops.hy_motion.export_takes(scope="ALL", directory=str(tmp_path))
    assert result == {"FINISHED"}
    assert len(list(tmp_path.iterdir())) == 6
    assert all(rig_history.record_for(t, scene_settings(scene).retarget.rig) for t in takes)


def test_step_jobs_are_one_undo_step() -> None:
    """Export on the character writes its Actions there as Compare and re-bake do: all three
    push one undo step (docs/addon.md; the undo stack itself needs a GUI Blender)."""
    from blender_addon import finishing_ui, operators

    for operator in (operators.HYMOTION_OT_compare_takes, operators.HYMOTION_OT_export_takes,
                     finishing_ui.HYMOTION_OT_finish_take):  # fmt: skip
        assert "UNDO" in operator.bl_options, operator.bl_idname


@pytest.fixture
def queue() -> Iterator[list[Any]]:
    """The queue of jobs for a window, left empty and its timer unregistered (bpy 4.2 and 4.5
    crash or hang at exit with a timer registered)."""
    yield step_runner._queued
    step_runner._queued.clear()
    if bpy.app.timers.is_registered(step_runner._start_queued):
        bpy.app.timers.unregister(step_runner._start_queued)


def test_a_queued_rebake_is_queued_once_and_runs_through_the_operator(
    scene: Any, queue: list[Any]
) -> None:
    # What a finishing toggle does with a window: queue the job for Re-bake Finishing, which a
    # timer invokes (timers never tick in the bpy module: the timer is called directly; its
    # operator then runs the steps headless, to the end).
    hero, scout, takes = two_characters_playing(scene)
    trimmed(takes[0])
    for _ in range(2):
        step_runner.invoke_soon("hy_motion.finish_take", scene, index=0)
    step_runner.invoke_soon("hy_motion.finish_take", scene, index=9)  # refused: no take 9
    assert queue == [
        ("hy_motion.finish_take", scene.name, {"index": 0}),
        ("hy_motion.finish_take", scene.name, {"index": 9}),
    ]
    assert bpy.app.timers.is_registered(step_runner._start_queued)
    assert step_runner._start_queued() == step_runner.TICK_S  # one started, one waits
    assert build.action_frames(playing(hero)) == build.action_frames(playing(scout)) == (1, 26)
    assert step_runner._start_queued() is None and queue == []


def test_with_a_window_a_toggle_queues_the_job_unless_it_is_one_step(
    scene: Any, queue: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The bpy module has no window; pretend it has one to see what a toggle in the panel does.
    hero, scout, takes = two_characters_playing(scene)
    monkeypatch.setattr(step_runner, "has_window", lambda: True)
    own, hero_before = keys(takes[0].action), playing(hero)
    takes[0].finishing.trim_end = 30  # three steps: queued, nothing written yet
    assert same_keys(takes[0].action, own) and playing(hero) == hero_before
    assert queue == [("hy_motion.finish_take", scene.name, {"index": 0})]
    step_runner._start_queued()  # the timer's tick: Re-bake Finishing runs the job
    assert build.action_frames(playing(hero)) == build.action_frames(playing(scout)) == (1, 30)
    takes[1].finishing.trim_end = 20  # no character plays take 1: one step, done at once
    assert build.action_frames(takes[1].action) == (1, 20) and queue == []


def test_new_candidates_on_a_character_are_compared_one_take_per_step(
    scene: Any, queue: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # *Side by side* after a Generate on the character: with a window, Compare's job is queued
    # (one take's retarget per step), not made in the timer tick that received the result.
    from blender_addon import runtime

    hero, takes, _, _ = character_scene(scene)
    monkeypatch.setattr(step_runner, "has_window", lambda: True)
    runtime.compare_new_takes(scene, takes)
    assert queue == [("hy_motion.compare_takes", scene.name, {"scope": "JOB"})]
    assert not rig_history.record_for(takes[1], hero)  # nothing retargeted yet
    step_runner._start_queued()  # the timer's tick: Compare runs its job
    assert all(rig_history.record_for(t, hero) for t in takes)
    assert len(bpy.data.collections[history.COMPARE_COLLECTION].objects) == 3
