"""Finishing in the scene (issue #10) with the real bpy module: BVH as a take, per-take options
re-baking the take's Action from the kept raw take, refusals, exports and the batch flags."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import bpy
import numpy as np
import pytest

from blender_addon import build, history
from blender_addon.core.errors import BvhError
from blender_addon.core.finishing.options import FinishOptions
from blender_addon.core.finishing.pipeline import finish
from blender_addon.core.motion import bvh_import
from blender_addon.core.rig import C
from blender_addon.props import scene_settings
from tests.addon.test_addon_batch import daemon, run_batch  # noqa: F401 (fixture)
from tests.addon.test_addon_scene import bone_heads

MOCAP = Path(__file__).resolve().parents[2] / "examples" / "mocap"
WALK = MOCAP / "walk_turn_left_cmu_16_11.bvh"
TOLERANCE_M = 0.001


def _keys(action: bpy.types.Action) -> np.ndarray:
    """Every key of every curve of ``action`` (curve order fixed by the skeleton)."""
    data = bpy.data.armatures[0]
    _, rotations, pelvis = build.read_motion(action, data)
    return np.concatenate([rotations.reshape(len(rotations), -1), pelvis], axis=1)


def _imported(scene: Any) -> Any:
    result = bpy.ops.hy_motion.import_bvh(filepath=str(WALK))
    assert result == {"FINISHED"}
    return scene_settings(scene).takes[0]


def test_bvh_as_a_take_plays_what_the_core_computed(scene: Any) -> None:
    take = _imported(scene)
    expected = bvh_import.load_bvh_take(WALK)
    assert take.frames == expected.rotations.shape[0] and take.model == "bvh"
    obj = scene_settings(scene).armature
    frames = range(1, take.frames + 1, 9)
    heads = bone_heads(obj, expected.skeleton.joint_names, frames)
    want = expected.joint_positions[[f - 1 for f in frames]] @ C.T
    assert np.abs(heads - want).max() < TOLERANCE_M


def test_options_rebake_the_take_and_keep_the_raw_one(scene: Any) -> None:
    take = _imported(scene)
    raw_keys = _keys(take.action)
    action = take.action
    started = time.perf_counter()
    take.finishing.foot_lock = "AUTO"
    take.finishing.loop = True
    elapsed = time.perf_counter() - started
    print(f"two option toggles on a {raw_keys.shape[0]}-frame take: {elapsed * 1000:.1f} ms")
    assert take.action == action  # same datablock, re-baked in place
    assert take.raw_action is not None
    np.testing.assert_array_equal(_keys(take.raw_action), raw_keys)
    # The status line as docs/addon.md words it (loop, foot lock's skate, travel, frames).
    line = (r"loop \d+ frames \(\d+–\d+\) · skate \d+\.\d\d → \d+\.\d\d m · "
            r"travel/cycle \d+\.\d\d m, [+-]\d+° · \d+ frames")  # fmt: skip
    assert re.fullmatch(line, take.finishing.status), take.finishing.status
    # the scene plays what the core's pipeline computes from the raw take
    source = bvh_import.load_bvh_take(WALK)
    done = finish(source.skeleton, source.rotations, source.root_positions, 30.0,
                  FinishOptions(foot_lock="AUTO", loop=True))  # fmt: skip
    assert take.frames == done.clip.frames
    assert build.action_frames(take.action) == (1, done.clip.frames)
    frames = range(1, done.clip.frames + 1, 7)
    heads = bone_heads(scene_settings(scene).armature, source.skeleton.joint_names, frames)
    want = done.clip.joint_positions()[[f - 1 for f in frames]] @ C.T
    assert np.abs(heads - want).max() < TOLERANCE_M
    # every option off again: the raw take comes back exactly
    take.finishing.foot_lock = "OFF"
    take.finishing.loop = False
    np.testing.assert_array_equal(_keys(take.action), raw_keys)


def test_a_refused_option_leaves_the_take_unchanged(scene: Any) -> None:
    take = _imported(scene)
    take.finishing.trim_start, take.finishing.trim_end = 1, 20  # a 20-frame take
    short_keys = _keys(take.action)
    take.finishing.loop = True
    assert "loop needs a take of at least 40 frames" in take.finishing.status
    np.testing.assert_array_equal(_keys(take.action), short_keys)
    take.finishing.loop = False
    take.finishing.trim_end = 999
    assert "trim frames 1–999 are outside this take" in take.finishing.status
    np.testing.assert_array_equal(_keys(take.action), short_keys)


def test_exports_use_the_finished_motion(scene: Any, tmp_path: Path) -> None:
    take = _imported(scene)
    take.finishing.in_place = True
    take.finishing.trim_start, take.finishing.trim_end = 11, 70
    (path,) = history.export_take(scene, take, tmp_path, ["BVH"])
    clip = bvh_import.read_bvh(path)
    assert clip.frames == 60
    pelvis = clip.root_positions() / 100.0  # the writer's centimetres
    assert np.ptp(pelvis[:, [0, 2]], axis=0).max() <= 1e-3


@pytest.mark.slow
def test_batch_flags_finish_every_take_and_say_so(tmp_path: Path, daemon: Any) -> None:  # noqa: F811
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a person walks\n")
    out = tmp_path / "out"
    args = ["--prompts", str(prompts), "--out", str(out), "--address", daemon.address,
            "--duration", "3", "--steps", "5", "--seed", "3", "--candidates", "2",
            "--formats", "bvh", "--foot-lock", "grounding", "--in-place",
            "--trim", "5:80"]  # fmt: skip
    result = run_batch(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["finishing"]["in_place"] and summary["finishing"]["trim_end"] == 80
    for item in summary["items"]:
        assert item["finishing"]["report"]["frames_out"] == 76
        assert item["frames"] == item["finishing"]["report"]["frames_in"] == 90  # as generated
        clip = bvh_import.read_bvh(Path(item["files"][0]))
        assert clip.frames == 76
    bad = run_batch(*args[:4], "--trim", "five")
    assert bad.returncode == 2 and "--trim takes FIRST:LAST" in bad.stderr


@pytest.mark.slow
def test_batch_bvh_mode_writes_finished_takes_without_a_daemon(tmp_path: Path) -> None:
    out = tmp_path / "out"
    bad = tmp_path / "bad.bvh"
    bad.write_text("HIERARCHY\nROOT Hips\n{\n OFFSET 0 0 0\n}\n")
    missing = tmp_path / "missing.bvh"
    result = run_batch("--bvh", str(WALK), "--bvh", str(bad), "--bvh", str(missing),
                       "--out", str(out), "--formats", "blend,bvh", "--foot-lock", "auto",
                       "--loop")  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    summary = json.loads((out / "summary.json").read_text())
    good, broken, absent = summary["items"]
    # One line per file naming it once, also where the reader's error names it already.
    hint = BvhError.hint
    failures = [f"{bad}: no MOTION section — {hint}",
                f"cannot read {missing}: No such file or directory — {hint}"]  # fmt: skip
    assert summary["failures"] == failures
    lines = result.stdout.splitlines()
    assert [f"[2/3] {failures[0]}", f"[3/3] {failures[1]}"] == [
        line for line in lines if line.startswith(("[2/3]", "[3/3]"))
    ]
    assert absent["code"] == "bad_bvh" and absent["files"] == []
    assert good["error"] == "" and good["convention"] == "cmu"
    assert good["finishing"]["report"]["loop"]["frames"] >= 20
    (bvh,) = [Path(f) for f in good["files"] if f.endswith(".bvh")]
    assert bvh_import.read_bvh(bvh).frames == good["finishing"]["report"]["frames_out"]
    assert "no MOTION section" in broken["error"] and broken["files"] == []
    assert broken["code"] == "bad_bvh" and "code" not in good  # docs/addon.md, Error codes
    # Flags that change nothing (the defaults, given) add no finishing record.
    plain = run_batch("--bvh", str(WALK), "--out", str(tmp_path / "plain"), "--formats", "blend",
                      "--foot-lock", "off")  # fmt: skip
    assert plain.returncode == 0, plain.stdout + plain.stderr
    (item,) = json.loads((tmp_path / "plain" / "summary.json").read_text())["items"]
    assert "finishing" not in item
    both = run_batch("--bvh", str(WALK), "--prompts", str(bad), "--out", str(out))
    assert both.returncode == 2 and "either --prompts or --bvh" in both.stderr


def test_deleting_a_finished_take_deletes_its_raw_action(scene: Any) -> None:
    take = _imported(scene)
    take.finishing.in_place = True
    assert len(bpy.data.actions) == 2
    history.delete_take(scene, 0)
    assert len(bpy.data.actions) == 0


def test_a_take_s_actions_follow_its_name(scene: Any) -> None:
    # Its own, its raw one (kept by finishing) and the one on the artist's rig: each named after
    # the take, renamed with it from the takes list (the name field) or the Rename operator.
    from tests.addon.test_retarget_history import character_scene

    rig, takes, _, _ = character_scene(scene)
    history.apply_take(scene, takes[1])
    take = takes[1]
    take.finishing.trim_end = 30
    old = take.name
    assert take.raw_action.name == f"HYM {old} (raw)"
    assert take.rig_actions[0].action.name == f"HYM {old} @ Hero"
    take.name = "hero walk"  # as the takes list's double-click rename sets it
    names = (take.action.name, take.raw_action.name, take.rig_actions[0].action.name)
    assert names == ("HYM hero walk", "HYM hero walk (raw)", "HYM hero walk @ Hero")
    assert bpy.ops.hy_motion.rename_take(index=1, name=" hero walk 2 ") == {"FINISHED"}
    assert take.raw_action.name == "HYM hero walk 2 (raw)"
    assert rig.animation_data.action.name == "HYM hero walk 2 @ Hero"
    # the other takes keep their names, and the finishing still re-bakes from the raw take
    assert takes[0].action.name == f"HYM {takes[0].name}" and not any(
        a.name.startswith(f"HYM {old}") for a in bpy.data.actions
    )
    take.finishing.trim_end = 0
    assert build.action_frames(take.action) == (1, 40)


def test_a_take_renamed_to_nothing_gets_its_first_name_back(scene: Any) -> None:
    take = _imported(scene)
    first = take.name
    take.name = "hero walk"
    take.name = "  "  # cleared in the takes list (the Rename operator refuses an empty name)
    assert take.name == first
    assert take.action.name == f"HYM {first}"
