"""Direction on the artist's own rig (issue #11): the rig's pose read back onto the model
skeleton (``core.rig_pose``, the inverse of retargeting), and a directed take applied to the
rig standing where the pose was read.

Judged on the rig, as Blender poses it: a keyed rig pose read onto the model and retargeted
back matches it (mapped bone segments' directions median <= 2 deg, max <= 5 deg; hands, feet
and every mapped bone's head <= 2 cm), on the Mixamo and UE5 test rigs and on the rig
Blender's own Rigify generates, with poses from the real CMU clips; then end to end through
the panel's Generate on the real tiny engine.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bpy
import numpy as np
import pytest

from blender_addon import build, directing_ui, history, prefs, rig_reader, rig_takes
from blender_addon.core import bone_mapping, directing, retarget, rig_pose
from blender_addon.core.motion import bvh_import, kinematics
from blender_addon.core.motion import rotations as rot
from blender_addon.core.motion.skeletons import MODEL_SKELETON
from blender_addon.core.rig import C
from blender_addon.core.rig_bones import RigBones, sorted_bones
from blender_addon.core.session import ServerInfo
from blender_addon.core.settings import GenerateSettings
from tests.addon import retarget_checks, rigs
from tests.addon.retarget_checks import CLIPS, clip_motion
from tests.addon.test_addon_batch import run_batch
from tests.addon.test_addon_daemon import set_panel
from tests.addon.test_addon_scene import make_result

DIRECTION_MEDIAN_DEG, DIRECTION_MAX_DEG = 2.0, 5.0
POSITION_TOL_M = 0.02
#: What the round trip reaches (micrometres measured, docs/benchmarks.md); docs/addon.md
#: promises it, and the ground anchor needs it (without, the keys were 0.66-5 mm off).
EXACT_M = 1e-4
LIMBS = ("L_Wrist", "R_Wrist", "L_Ankle", "R_Ankle")
#: Frames of a clip whose poses are read back (every 9th of the first 120).
READ_FRAMES = list(range(1, 121, 9))


def _figures(plan: retarget.RigPlan, want: np.ndarray, got: np.ndarray) -> tuple[float, ...]:
    """(median, max direction error in degrees, worst hand/foot cm, worst mapped head cm) of
    rig poses ``got`` vs ``want`` (heads (F, N, 3) of every rig bone, model axes)."""
    segments = [(int(plan.bones[t]), int(plan.bones[c])) for t, c, _, _ in plan.calibration.aims]
    a = np.stack([got[:, c] - got[:, t] for t, c in segments], axis=1)
    b = np.stack([want[:, c] - want[:, t] for t, c in segments], axis=1)
    angles = np.degrees(rot.direction_angle(a, b))
    limbs = [plan.rig.index(plan.mapping.joints[j]) for j in LIMBS]
    mapped = [plan.rig.index(b) for b in plan.mapping.joints.values()]
    limb_cm = float(np.linalg.norm(got[:, limbs] - want[:, limbs], axis=-1).max()) * 100
    head_cm = float(np.linalg.norm(got[:, mapped] - want[:, mapped], axis=-1).max()) * 100
    return float(np.median(angles)), float(angles.max()), limb_cm, head_cm


def _assert_matches(figures: tuple[float, ...]) -> None:
    """The issue's bounds, and the precision the docs promise (``EXACT_M``)."""
    median, worst, limb_cm, head_cm = figures
    assert median <= DIRECTION_MEDIAN_DEG and worst <= DIRECTION_MAX_DEG, figures
    assert limb_cm <= POSITION_TOL_M * 100 and head_cm <= POSITION_TOL_M * 100, figures
    assert head_cm / 100 <= EXACT_M, figures


def other_feet(body: rigs.Body = rigs.TALL_A) -> RigBones:
    """A Mixamo rig whose feet are not the model's shape (toes 6 cm further forward and 3 cm
    lower than the scaled model's): which joint is lowest, and how low, then depends on the
    pose unlike on the model, so the ground anchor a pose is read and placed with matters."""
    shift = np.array([0.0, -0.06, -0.03])  # Blender: forward is -Y
    bones = []
    for name, parent, head, tail in rigs.resolved(rigs.SPECS["MIXAMO"](), body):
        toe = "Toe" in name
        bones.append((name, parent, head + shift * toe, tail + shift * (toe or "Foot" in name)))
    heads, tails = np.array([b[2] for b in bones]), np.array([b[3] for b in bones])
    rest = [rigs.rest_matrix(h, t, rigs.roll_target((t - h) / np.linalg.norm(t - h), "twisted", i))
            for i, (h, t) in enumerate(zip(heads, tails, strict=True))]  # fmt: skip
    return sorted_bones([b[0] for b in bones], [b[1] for b in bones], heads, tails,
                        np.array(rest), np.ones(len(bones), dtype=bool))  # fmt: skip


def _posed(scene: Any, obj: Any, frames: list[int]) -> tuple[np.ndarray, np.ndarray]:
    rig = rig_reader.rig_bones(obj)
    return rig_pose.posed_bones(rig, rig_reader.posed_matrices(scene, obj, rig.names, frames))


def _key_artist_action(obj: Any, motion: rig_takes.Motion) -> Any:
    """The artist's keys: the clip retargeted onto the rig, as the rig's own action."""
    (action,) = rig_takes.retarget_actions(obj, [motion], retarget.RetargetOptions())
    del action[rig_takes.TAKE_KEY]
    build.assign_action(obj, action)
    return action


def round_trip(scene: Any, obj: Any, frames: list[int]) -> tuple[float, ...]:
    """Read ``obj``'s pose at ``frames`` onto the model, retarget those poses back as a take
    anchored at its first pose, let Blender pose the rig with it, and compare. Each pose is
    judged as a pose: planted feet (a clip's contacts) stay off, as for a one-frame take."""
    want_heads, want_world = _posed(scene, obj, frames)
    rig = rig_reader.rig_bones(obj)
    plan = retarget.plan(MODEL_SKELETON, rig, rig_takes.rig_mapping(obj))
    read = rig_pose.model_poses(plan, want_heads, want_world)
    motion = rig_takes.Motion("read back", MODEL_SKELETON, read.rotations, read.root_positions,
                              30.0, anchor_frame=0)  # fmt: skip
    options = retarget.RetargetOptions(pin_feet=False)
    (action,) = rig_takes.retarget_actions(obj, [motion], options)
    build.assign_action(obj, action)
    got_heads, _ = _posed(scene, obj, list(range(1, len(frames) + 1)))
    return _figures(plan, want_heads, got_heads)


def test_the_reader_sees_what_blender_poses(scene: Any) -> None:
    obj = rigs.build_armature(scene, rigs.rig_bones("UE5", rigs.TALL_A, roll="twisted"), "UE5")
    obj.rotation_euler = (0.0, 0.0, 0.7)
    obj.scale = (0.5, 0.5, 0.5)
    scene.view_layers[0].update()
    _key_artist_action(obj, clip_motion("run_cmu_02_03.bvh"))
    rig = rig_reader.rig_bones(obj)
    heads, world = _posed(scene, obj, [1, 2, 3])
    scene.frame_set(7)
    want_heads, want_world = retarget_checks.evaluated(obj, rig.names, 3)
    assert scene.frame_current == 3  # evaluated() moves the frame; the reader puts it back
    np.testing.assert_allclose(heads, want_heads, atol=1e-6)
    assert float(rot.angle_between(world, want_world).max()) < 1e-5


@pytest.mark.parametrize("clip", CLIPS)
@pytest.mark.parametrize("key", ["MIXAMO", "UE5", "MIXAMO_OTHER_FEET"])
def test_a_keyed_rig_pose_comes_back_from_the_model(scene: Any, clip: str, key: str) -> None:
    if key == "MIXAMO_OTHER_FEET":
        rig = other_feet(rigs.CHILD_A)
    else:
        rig = rigs.rig_bones(key, rigs.TALL_A if key == "MIXAMO" else rigs.CHILD_A, "twisted")
    obj = rigs.build_armature(scene, rig, key)
    obj.location = (1.5, -2.0, 0.0)  # poses are read where the character stands
    _key_artist_action(obj, clip_motion(clip))
    _assert_matches(round_trip(scene, obj, READ_FRAMES))


def test_artist_poses_the_retarget_never_makes_come_back(scene: Any) -> None:
    """Poses off the forward's own results: every mapped bone turned up to 25 degrees (twist,
    bends the model's segments cannot make on their own), read back and retargeted again."""
    obj = rigs.build_armature(scene, rigs.rig_bones("MIXAMO", rigs.CHILD_T), "Mixamo")
    _key_artist_action(obj, clip_motion("kick_cmu_10_02_daz.bvh"))
    retarget_checks.turn_mapped_bones(scene, obj, READ_FRAMES, max_deg=25.0)
    _assert_matches(round_trip(scene, obj, READ_FRAMES))


def test_the_model_pose_read_is_the_retargets_inverse_without_blender() -> None:
    """The inverse alone (no bpy): rig poses made by retargeting every CMU clip come back to
    the same pelvis and the same directions of every aimed model segment."""
    rig = rigs.rig_bones("UE5", rigs.TALL_A, roll="twisted")
    plan = retarget.plan(MODEL_SKELETON, rig, bone_mapping.auto_mapping(rig))
    segments = [(s, c) for _, _, s, c in plan.calibration.aims]
    for path in (retarget_checks.MOCAP / clip for clip in CLIPS):
        take = bvh_import.load_bvh_take(path)
        rotations, pelvis = take.rotations[:90], take.root_positions[:90]
        placed = retarget.retarget(plan, rotations, pelvis, take.fps,
                                   retarget.RetargetOptions(pin_feet=False))  # fmt: skip
        frames = len(rotations)
        heads = np.zeros((frames, rig.count, 3))
        world = np.broadcast_to(rot.IDENTITY, (frames, rig.count, 4)).copy()
        heads[:, plan.bones] = placed.joint_positions
        world[:, plan.bones] = placed.world_rotations
        lift = rig_pose.placed_lift(plan, placed.root_positions, pelvis)
        read = rig_pose.model_poses(plan, heads, world, lift)
        np.testing.assert_allclose(read.root_positions, pelvis, atol=1e-5)
        want = kinematics.joint_positions(MODEL_SKELETON, rotations, pelvis)
        got = kinematics.joint_positions(MODEL_SKELETON, read.rotations, read.root_positions)
        a = np.stack([got[:, c] - got[:, s] for s, c in segments], axis=1)
        b = np.stack([want[:, c] - want[:, s] for s, c in segments], axis=1)
        angles = np.degrees(rot.direction_angle(a, b))
        assert angles.max() < 0.01, path.name


def test_a_path_in_the_rigs_scene_is_where_its_pelvis_goes() -> None:
    """Ground points given where the rig stands (a turned, scaled character away from the
    origin) put the rig's Pelvis bone on them, facing the given heading."""
    rig = rigs.rig_bones("MIXAMO", rigs.CHILD_A)
    turn = rot.to_matrix(rot.yaw(0.9, up=2, forward=1))
    rig = type(rig)(rig.names, rig.parents, rig.heads @ turn.T, rig.tails @ turn.T,
                    np.einsum("ab,nbc->nac", turn, rig.rest), rig.deform,
                    object_rotation=turn)  # fmt: skip
    plan = retarget.plan(MODEL_SKELETON, rig, bone_mapping.auto_mapping(rig))
    location = np.array([3.0, -1.0, 0.0])  # Blender
    placement = rig_pose.Placement.of(plan, location)
    scene_points = np.array([[3.0, 1.0, 0.0], [5.0, 3.0, 0.4]])  # model (x, z, heading)
    model = placement.path_to_model(scene_points)
    pelvis = np.stack([model[:, 0], np.full(2, 0.9), model[:, 1]], axis=-1)
    rotations = np.broadcast_to(rot.IDENTITY, (2, 22, 4)).copy()
    rotations[:, 0] = rot.yaw(model[:, 2])
    placed = retarget.retarget(plan, rotations, pelvis, 30.0, retarget.RetargetOptions())
    at = placed.root_positions + location @ C
    np.testing.assert_allclose(at[:, [0, 2]], scene_points[:, :2], atol=1e-9)
    # The rig faces its rest facing (the model's turned by align), turned by the pelvis' change.
    change = rot.multiply(placed.world_rotations[:, 0], rot.inverse(plan.target.rotations[0]))
    facing = rot.heading(rot.multiply(change, plan.calibration.align))
    np.testing.assert_allclose(facing, scene_points[:, 2], atol=1e-9)


# The Rigify test comes right after this fixture: tests with the ``scene`` fixture reset the
# file, which removes the generated rig.
@pytest.fixture(scope="module")
def rigify_rig(addon: None) -> Iterator[Any]:
    yield from retarget_checks.generated_rigify()


@pytest.mark.parametrize("clip", ["walk_turn_left_cmu_16_11.bvh", "kick_cmu_10_02_daz.bvh"])
def test_blender_rigify_rig_pose_comes_back(rigify_rig: Any, clip: str) -> None:
    _key_artist_action(rigify_rig, clip_motion(clip))
    _assert_matches(round_trip(bpy.context.scene, rigify_rig, READ_FRAMES))


# --- end to end: the panel on the real tiny engine -------------------------------------------


@pytest.fixture
def tiny_daemon(start_daemon: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    handle = start_daemon(real_engine=True)
    monkeypatch.setenv(prefs.ADDRESS_ENV, handle.address)
    yield handle


def _character(scene: Any) -> Any:
    obj = rigs.build_armature(scene, other_feet(), "Hero")
    obj.location = (2.0, 1.0, 0.0)
    obj.rotation_euler = (0.0, 0.0, 0.6)
    scene.view_layers[0].update()
    settings = scene.hy_motion
    settings.target = "SELECTED_ARMATURE"
    settings.retarget.rig = obj
    return obj


@pytest.mark.slow
def test_the_artists_character_starts_from_its_pose_and_lands_on_its_key(
    scene: Any, tiny_daemon: Any
) -> None:
    """The artist's character plays its own keys; at frame 11 they press Generate with "Start:
    Current Pose" and "End on Pose" at frame 41: the character, now playing the new take,
    stands in its frame-11 pose on the take's first frame and in its frame-41 pose 30 frames
    later. Then "End of Take" continues that take on the character without a jump."""
    obj = _character(scene)
    artist = _key_artist_action(obj, clip_motion("walk_turn_left_cmu_16_11.bvh"))
    want, _ = _posed(scene, obj, [11, 41])
    take = retarget_checks.generate_from_pose_to_key(scene, 11, 41)
    assert take.anchor_frame == 0
    playing = obj.animation_data.action
    assert playing is not artist and playing.get(rig_takes.TAKE_KEY) == take.name
    assert artist.use_fake_user  # the artist's keys are kept
    plan = retarget.plan(MODEL_SKELETON, rig_reader.rig_bones(obj), rig_takes.rig_mapping(obj))
    got, _ = _posed(scene, obj, [1, 31])
    landed = _figures(plan, want, got)
    print(f"start + end key on the rig (median, max deg, hands/feet cm, heads cm): {landed}")
    _assert_matches(landed)

    # End of Take: the new take's first 15 frames are the last 15 of this one, on the rig too.
    before, _ = _posed(scene, obj, list(range(46, 61)))
    options = directing_ui.direction(scene)
    options.start, options.end_on_pose = "TAKE_END", False
    assert bpy.ops.hy_motion.generate() == {"FINISHED"}, scene.hy_motion.status_message
    after, _ = _posed(scene, obj, list(range(1, 16)))
    continued = _figures(plan, before, after)
    print(f"end of take on the rig (median, max deg, hands/feet cm, heads cm): {continued}")
    _assert_matches(continued)


def test_end_of_take_then_a_key_after_it_on_the_character(scene: Any) -> None:
    """End of Take + End on Pose at a frame after the take (no daemon: the constraints, then
    retargeted back as the new take will be): the take's last 15 frames where the take stands
    on the rig, then the character's own pose at that frame."""
    obj = _character(scene)
    (take,) = history.add_result(scene, make_result(1, 60), ServerInfo())
    history.apply_take(scene, take)  # the character plays the take (frames 1-60)
    scene.frame_set(80)
    for bone in ("mixamorig:Spine", "mixamorig:LeftArm", "mixamorig:RightUpLeg"):
        obj.pose.bones[bone].rotation_quaternion = (0.9, 0.3, 0.2, 0.1)
        obj.pose.bones[bone].keyframe_insert("rotation_quaternion", frame=80)
    want, _ = _posed(scene, obj, [*range(46, 61), 80])
    options = directing_ui.direction(scene)
    options.start, options.end_on_pose, options.end_frame = "TAKE_END", True, 80
    constraints = directing_ui.constraints_for(scene, 2.0)
    assert constraints is not None and constraints.pose_frames is not None
    assert constraints.pose_frames.tolist() == [*range(15), 34]  # 80 is 34 frames after 46
    poses = rig_takes.Motion("read", MODEL_SKELETON, constraints.pose_rotations,
                             constraints.pose_root_positions, 30.0, anchor_frame=0)  # fmt: skip
    options_off = retarget.RetargetOptions(pin_feet=False)
    (action,) = rig_takes.retarget_actions(obj, [poses], options_off)
    build.assign_action(obj, action)
    got, _ = _posed(scene, obj, list(range(1, 17)))
    plan = retarget.plan(MODEL_SKELETON, rig_reader.rig_bones(obj), rig_takes.rig_mapping(obj))
    _assert_matches(_figures(plan, want, got))


def test_between_keys_reads_the_characters_poses_at_from_and_to(scene: Any) -> None:
    """In-between Between Keys with the character as target (no daemon: the constraints, then
    retargeted back as the new take will be): the take spans From..To and holds the
    character's own poses there."""
    obj = _character(scene)
    _key_artist_action(obj, clip_motion("walk_turn_left_cmu_16_11.bvh"))
    want, _ = _posed(scene, obj, [11, 41])
    options = directing_ui.direction(scene)
    options.inbetween, options.inbetween_from, options.inbetween_to = "KEYS", 11, 41
    settings = GenerateSettings("walk", 2.0, candidates=1, guidance=5.0, steps=4)
    directed = directing_ui.directed_settings(scene, settings)
    constraints = directed.constraints
    assert directed.duration_s == pytest.approx(31 / 30)
    assert constraints is not None and constraints.pose_frames is not None
    assert constraints.pose_frames.tolist() == [0, 30]
    poses = rig_takes.Motion("read", MODEL_SKELETON, constraints.pose_rotations,
                             constraints.pose_root_positions, 30.0, anchor_frame=0)  # fmt: skip
    (action,) = rig_takes.retarget_actions(obj, [poses], retarget.RetargetOptions(pin_feet=False))
    build.assign_action(obj, action)
    got, _ = _posed(scene, obj, [1, 2])
    plan = retarget.plan(MODEL_SKELETON, rig_reader.rig_bones(obj), rig_takes.rig_mapping(obj))
    _assert_matches(_figures(plan, want, got))


def test_into_take_is_refused_on_the_character(scene: Any) -> None:
    _character(scene)
    directing_ui.direction(scene).inbetween = "TAKES"
    settings = GenerateSettings("walk", 2.0, candidates=1, guidance=5.0, steps=4)
    with pytest.raises(directing.DirectionError, match="Into Take works on the add-on's own"):
        directing_ui.directed_settings(scene, settings)


def test_a_curve_is_followed_where_the_character_stands(scene: Any) -> None:
    obj = _character(scene)
    data = bpy.data.curves.new("path", "CURVE")
    spline = data.splines.new("POLY")
    spline.points.add(1)
    ends = np.array([[2.0, 1.0], [4.0, -3.0]])  # Blender (x, y)
    for point, (x, y) in zip(spline.points, ends, strict=True):
        point.co = (x, y, 0.0, 1.0)
    curve = bpy.data.objects.new("path", data)
    scene.collection.objects.link(curve)
    directing_ui.direction(scene).curve = curve
    constraints = directing_ui.constraints_for(scene, 2.0)
    assert constraints is not None and constraints.path_points is not None
    # Where the rig's Pelvis bone goes for those model points: turned, scaled, from its object.
    plan = retarget.plan(MODEL_SKELETON, rig_reader.rig_bones(obj), rig_takes.rig_mapping(obj))
    model = constraints.path_points[[0, -1]].astype(np.float64)
    ground = np.stack([model[:, 0], np.zeros(2), model[:, 1]], axis=-1)
    rig = rot.rotate(plan.calibration.align, ground) * plan.calibration.scale
    scene_xy = (rig @ C.T)[:, :2] + np.array(obj.location)[:2]
    np.testing.assert_allclose(scene_xy, ends, atol=1e-5)


def test_a_character_is_needed_to_direct_with_the_selected_armature_target(scene: Any) -> None:
    directing_ui.direction(scene).start = "CURRENT"
    set_panel(scene, duration_s=2.0, steps=4, candidates=1)
    scene.hy_motion.target = "SELECTED_ARMATURE"
    with pytest.raises(RuntimeError, match="no character chosen"):
        bpy.ops.hy_motion.generate()
    assert len(scene.hy_motion.takes) == 0


@pytest.mark.slow
def test_a_directed_batch_path_is_where_the_character_goes(
    scene: Any, tmp_path: Path, tiny_daemon: Any
) -> None:
    """--target-rig: the job's path is in the character's scene (its rig object moved, turned
    and scaled there): the character's Pelvis bone passes over the given points."""
    hero = rigs.build_armature(scene, rigs.rig_bones("MIXAMO", rigs.CHILD_A), "Hero")
    hero.location, hero.rotation_euler = (2.0, -1.0, 0.0), (0.0, 0.0, 0.6)
    hero.scale = (1.2, 1.2, 1.2)
    character = tmp_path / "hero.blend"
    bpy.data.libraries.write(str(character), {hero})
    points = [{"frame": 0, "x": 2.5, "y": -1.0}, {"frame": 59, "x": 3.5, "y": 1.0}]
    jobs = tmp_path / "jobs.json"
    jobs.write_text(json.dumps([{"prompt": "a person walks", "direct": {"path": points}}]))
    out = tmp_path / "out"
    result = run_batch("--prompts", str(jobs), "--out", str(out), "--address",
                       tiny_daemon.address, "--duration", "2", "--steps", "4", "--seed", "3",
                       "--candidates", "1", "--formats", "blend",
                       "--target-rig", f"{character}:Hero")  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    bpy.ops.wm.open_mainfile(filepath=str(out / "001_a_person_walks" / "001_a_person_walks.blend"))
    obj = bpy.data.objects["Hero"]
    world = np.array(obj.matrix_world)
    pelvis = []
    for frame in (1, 60):
        bpy.context.scene.frame_set(frame)
        head = np.array(obj.pose.bones["mixamorig:Hips"].head)  # armature space
        pelvis.append(world[:3, :3] @ head + world[:3, 3])
    want = [[p["x"], p["y"]] for p in points]
    np.testing.assert_allclose(np.array(pelvis)[:, :2], want, atol=1e-3)
