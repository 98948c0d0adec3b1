"""The bpy-free core: conversions, names, files, BVH text, settings, errors, prompt files."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from blender_addon.core import (
    batch_input,
    batch_plan,
    bvh,
    conversion,
    describe,
    files,
    naming,
    rig,
    settings,
)
from blender_addon.core.errors import (
    BatchInputError,
    ExportError,
    FileExists,
    KeyPairError,
    NoAnswerOverCurve,
    OnlineAccessRefused,
    ServerKeyError,
    SettingsError,
)
from shared_protocol import Busy, DaemonUnreachable, InvalidArgument, QuotaExceeded, keys
from shared_protocol.motion import forward_kinematics, quaternion_to_matrix
from tests.addon import synthetic

ROOT = Path(__file__).resolve().parents[2]


def test_core_imports_without_bpy() -> None:
    code = (
        "import sys; sys.modules['bpy'] = None; sys.modules['mathutils'] = None\n"
        "import pkgutil, importlib, blender_addon.core as core\n"
        "for m in pkgutil.walk_packages(core.__path__, 'blender_addon.core.'):\n"
        "    importlib.import_module(m.name)\n"
        "import blender_addon.batch\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def random_rotations(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    q = np.random.default_rng(seed).normal(size=(*shape, 3, 3))
    u, _, vt = np.linalg.svd(q)
    r = u @ vt
    return r * np.sign(np.linalg.det(r))[..., None, None]


def test_rig_layout_points_bones_along_children() -> None:
    skeleton = synthetic.skeleton()
    layout = rig.rig_layout(skeleton)
    heads = skeleton.rest_positions.astype(np.float64) @ rig.C.T
    np.testing.assert_allclose(layout.heads, heads)
    names = list(skeleton.joint_names)
    # Single child: the tail is the child's head; several: the chain's continuation.
    np.testing.assert_allclose(layout.tails[names.index("L_Knee")], heads[names.index("L_Ankle")])
    np.testing.assert_allclose(layout.tails[names.index("Pelvis")], heads[names.index("Spine1")])
    np.testing.assert_allclose(layout.tails[names.index("Spine3")], heads[names.index("Neck")])
    lengths = np.linalg.norm(layout.tails - layout.heads, axis=1)
    assert lengths.min() >= rig.MIN_BONE_LENGTH
    # Roll targets are unit and perpendicular to their bone.
    directions = (layout.tails - layout.heads) / lengths[:, None]
    np.testing.assert_allclose(np.linalg.norm(layout.roll_targets, axis=1), 1.0)
    assert np.abs(np.sum(directions * layout.roll_targets, axis=1)).max() < 1e-9


def test_skeleton_json_round_trip() -> None:
    skeleton = synthetic.skeleton()
    again = rig.skeleton_from_json(rig.skeleton_to_json(skeleton))
    assert rig.same_skeleton(skeleton, again)
    assert np.array_equal(again.rest_positions, skeleton.rest_positions)


def test_model_to_pose_round_trip_and_formula() -> None:
    rotations, pelvis, _ = synthetic.takes(1, 40, seed=3)
    rest = random_rotations((22,), seed=1)
    head = np.array([0.1, -0.2, 0.9])
    pose = conversion.model_to_pose(rotations[0], pelvis[0], rest, head)
    # L = B⁻¹ · C R Cᵀ · B, frame by frame.
    expected = (
        np.linalg.inv(rest)
        @ rig.C
        @ quaternion_to_matrix(rotations[0].astype(np.float64))
        @ rig.C.T
        @ rest
    )
    np.testing.assert_allclose(quaternion_to_matrix(pose.quaternions), expected, atol=1e-6)
    back_rot, back_pelvis = conversion.pose_to_model(pose, rest, head)
    np.testing.assert_allclose(np.abs(np.sum(back_rot * rotations[0], axis=-1)), 1.0, atol=1e-6)
    np.testing.assert_allclose(back_pelvis, pelvis[0], atol=1e-6)
    dots = np.sum(pose.quaternions[1:] * pose.quaternions[:-1], axis=-1)
    assert dots.min() >= 0  # sign-continuous


def test_resample_keeps_duration_and_values() -> None:
    rotations, pelvis, _ = synthetic.takes(1, 61, seed=2)
    same = conversion.resample(rotations[0], pelvis[0], 30.0, 30.0)
    assert np.array_equal(same[0], rotations[0]) and same[0].shape == rotations[0].shape
    rot24, pos24 = conversion.resample(rotations[0], pelvis[0], 30.0, 24.0)
    assert rot24.shape == (49, 22, 4) and pos24.shape == (49, 3)  # 2 s at 24 fps, both ends
    # Frames at the same instant (every 4th at 24 fps = every 5th at 30 fps) are unchanged.
    np.testing.assert_allclose(pos24[::4], pelvis[0][::5], atol=1e-6)
    np.testing.assert_allclose(np.abs(np.sum(rot24[::4] * rotations[0][::5], -1)), 1, atol=1e-6)


def test_names_from_prompt_and_seed() -> None:
    assert naming.slug("A person walks, then waves!") == "a_person_walks_then_waves"
    assert naming.slug("???") == "take"
    assert naming.slug("Ünïcödé  jump") == "unicode_jump"
    # As docs/addon.md says: letters without an ASCII form are dropped, each run of other
    # characters is one "_", none at either end.
    assert naming.take_name("跳 -- Jump, twice!", 3) == "jump_twice_s3"
    assert naming.take_name("走路", 3) == "take_s3"
    assert len(naming.slug("x" * 200)) == naming.SLUG_CHARS
    assert naming.export_filename("Walk", 12, "fbx") == "walk_s12.fbx"


def test_atomic_path_never_leaves_partial_files(tmp_path: Path) -> None:
    target = tmp_path / "out" / "a.txt"
    with files.atomic_path(target) as temp:
        temp.write_text("done")
    assert target.read_text() == "done"
    with pytest.raises(FileExists), files.atomic_path(target):
        pass
    with pytest.raises(RuntimeError), files.atomic_path(target, overwrite=True) as temp:
        temp.write_text("half")
        raise RuntimeError("exporter crashed")
    assert target.read_text() == "done"
    with pytest.raises(ExportError, match="wrote nothing"), files.atomic_path(target, True):
        pass
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.txt"]


def test_logs_name_final_files_not_temporary_ones(tmp_path: Path) -> None:
    target = tmp_path / "out" / "a_person_walks_s3.fbx"
    with files.atomic_path(target) as temp:
        temp.write_text("x")
        line = f"FBX export starting... '{temp}'; Saved copy as \"{temp.name}\""
    assert files.final_names(line) == (
        f"FBX export starting... '{target}'; Saved copy as \"{target.name}\""
    )


def test_batch_plan_fixes_seeds_and_names_every_output_up_front(tmp_path: Path) -> None:
    defaults = settings.GenerateSettings("", 2.0, 2, 5.0, 30, seed=None)
    prompts = tmp_path / "p.txt"
    prompts.write_text("Walk!\nwave | seed=7 candidates=3\n")
    items = batch_input.load_prompts(prompts, defaults)
    planned = batch_plan.plan(items, Path(os.path.relpath(tmp_path / "out")), ("blend", "fbx"))
    first, second = planned
    random_seed = first.item.settings.seed
    assert random_seed is not None and 0 <= random_seed <= settings.MAX_SEED
    assert first.seeds == [random_seed, random_seed + 1] and second.seeds == [7, 8, 9]
    out = (tmp_path / "out").resolve()
    assert first.blend == out / "001_walk" / "001_walk.blend"
    assert [path.name for path in second.paths] == [
        "002_wave.blend", "wave_s7.fbx", "wave_s8.fbx", "wave_s9.fbx"
    ]  # fmt: skip
    assert second.describe_seeds() == "seeds 7-9" and batch_plan.describe_seeds([4]) == "seed 4"
    assert batch_plan.existing_outputs(planned, tmp_path / "out") == []
    second.paths[2].parent.mkdir(parents=True)
    second.paths[2].write_text("earlier")
    (out / "summary.json").write_text("{}")
    assert batch_plan.existing_outputs(planned, tmp_path / "out") == [
        second.paths[2], out / "summary.json"
    ]  # fmt: skip


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into read-only folders")
def test_atomic_path_unwritable_folder(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    with pytest.raises(ExportError, match="cannot write"), files.atomic_path(folder / "a.fbx"):
        pass
    assert not list(folder.iterdir())


def test_atomic_path_folder_is_a_file(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    with pytest.raises(ExportError, match="cannot write"), files.atomic_path(blocker / "a.fbx"):
        pass


def test_euler_zxy_round_trip() -> None:
    matrices = random_rotations((200,), seed=5)
    z, x, y = np.moveaxis(bvh.matrices_to_euler_zxy(matrices), -1, 0)

    def rot(axis: int, angle: np.ndarray) -> np.ndarray:
        c, s = np.cos(angle), np.sin(angle)
        m = np.tile(np.eye(3), (len(angle), 1, 1))
        i, j = [(1, 2), (2, 0), (0, 1)][axis]
        m[:, i, i], m[:, i, j], m[:, j, i], m[:, j, j] = c, -s, s, c
        return m

    np.testing.assert_allclose(rot(2, z) @ rot(0, x) @ rot(1, y), matrices, atol=1e-9)


def test_bvh_text_layout() -> None:
    skeleton = synthetic.skeleton()
    rotations, pelvis, _ = synthetic.takes(1, 12)
    text = bvh.write_bvh(skeleton, rotations[0], pelvis[0], fps=30.0)
    hierarchy, motion = text.split("MOTION\n")
    assert hierarchy.count("JOINT ") == 21 and hierarchy.count("ROOT Pelvis") == 1
    assert hierarchy.count("End Site") == 5  # head, two feet, two wrists
    lines = motion.strip().splitlines()
    assert lines[0] == "Frames: 12" and lines[1] == "Frame Time: 0.03333333"
    values = np.array([line.split() for line in lines[2:]], dtype=float)
    assert values.shape == (12, 3 + 22 * 3)
    np.testing.assert_allclose(values[:, :3], pelvis[0] * 100, atol=1e-5)  # centimetres, Y up


def test_loopback_and_online_access() -> None:
    for address in ("tcp://127.0.0.1:7878", "tcp://localhost:1", "tcp://[::1]:5", "ipc:///tmp/x"):
        settings.check_address(address, online_access=False)
    with pytest.raises(OnlineAccessRefused, match="online access is off") as info:
        settings.check_address("tcp://gpu-box:7878", online_access=False)
    assert "Allow Online Access" in info.value.hint
    settings.check_address("tcp://gpu-box:7878", online_access=True)
    with pytest.raises(SettingsError, match="not a daemon address"):
        settings.check_address("http://gpu-box", online_access=True)


def test_client_config_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loopback = settings.ConnectionSettings(address="tcp://127.0.0.1:7878", artist="ann")
    config = settings.client_config(loopback, online_access=False)
    assert config.server_key is None and config.artist == "ann"
    for bad in ("bad name!", "ann\n", "-ann", "a" * 65):  # the daemon would refuse its hello
        with pytest.raises(SettingsError, match="artist name") as info:
            settings.client_config(replace(loopback, artist=bad), online_access=False)
        assert info.value.field == "artist"
    # No artist name: the login name is claimed, so it is held to the same rule.
    monkeypatch.setenv("LOGNAME", "Jane Doe")  # what getpass.getuser() reads first
    with pytest.raises(SettingsError, match="your login name, the default artist name, 'Jane"):
        settings.client_config(replace(loopback, artist=""), online_access=False)
    remote = settings.ConnectionSettings(address="tcp://10.1.2.3:7878")
    with pytest.raises(ServerKeyError, match="needs CURVE keys") as info:
        settings.client_config(remote, online_access=True)
    assert info.value.field == "server_key"
    server_public, _ = keys.generate_keypair(tmp_path, "server")
    server_key = keys.load_public_key(server_public).decode()
    # Each refusal names the key and says where to fix it.
    with pytest.raises(KeyPairError, match="you have no key pair") as info:
        settings.client_config(settings.ConnectionSettings(remote.address, server_key), True)
    assert "Generate Key Pair" in info.value.hint and "--key-file" in info.value.hint
    with pytest.raises(ServerKeyError, match=r"server public key is not usable: .*40 char") as info:
        settings.client_config(settings.ConnectionSettings(remote.address, "short", "x"), True)
    assert "server.key" in info.value.hint
    missing = settings.ConnectionSettings(remote.address, server_key, str(tmp_path / "no.key"))
    with pytest.raises(KeyPairError, match=r"your key pair is not usable: .*does not exist"):
        settings.client_config(missing, True)
    public_only = settings.ConnectionSettings(remote.address, server_key, str(server_public))
    with pytest.raises(KeyPairError, match="no secret key"):
        settings.client_config(public_only, True)
    _, artist_secret = keys.generate_keypair(tmp_path, "ann")
    good = settings.ConnectionSettings(remote.address, server_key, str(artist_secret))
    config = settings.client_config(good, True)
    assert config.server_key == server_key.encode() and config.client_keys is not None


def test_no_answer_names_the_curve_keys(tmp_path: Path) -> None:
    loopback = settings.ConnectionSettings("tcp://127.0.0.1:9", connect_timeout_s=0.5)
    plain = settings.no_answer(settings.client_config(loopback, False))
    assert type(plain) is DaemonUnreachable
    assert plain.message == "no HY-Motion daemon answered at tcp://127.0.0.1:9 within 0.5 s"
    server_public, _ = keys.generate_keypair(tmp_path, "server")
    artist_public, artist_secret = keys.generate_keypair(tmp_path, "ann")
    server_key = keys.load_public_key(server_public)
    config = settings.client_config(settings.ConnectionSettings(
        "tcp://127.0.0.1:9", server_key.decode(), str(artist_secret)), False)  # fmt: skip
    curve = settings.no_answer(config)
    assert isinstance(curve, NoAnswerOverCurve) and isinstance(curve, DaemonUnreachable)
    assert keys.fingerprint(server_key) in curve.message
    assert keys.fingerprint(keys.load_public_key(artist_public)) in curve.message
    assert "allow-list" in curve.hint


def test_build_request_validates_before_sending() -> None:
    base = settings.GenerateSettings("a person walks", 4.0, 2, 5.0, 50, seed=None)
    request = settings.build_request(base)
    assert request.seed is not None and 0 <= request.seed <= settings.MAX_SEED
    assert settings.build_request(base.__class__(**{**base.__dict__, "seed": 9})).seed == 9
    for change, field in (({"prompt": "   "}, "prompt"), ({"duration_s": 30.0}, "duration_s"),
                          ({"candidates": 0}, "candidates"), ({"steps": 1}, "steps"),
                          ({"guidance": 99.0}, "guidance")):  # fmt: skip
        with pytest.raises(InvalidArgument) as info:
            settings.build_request(base.__class__(**{**base.__dict__, **change}))
        assert info.value.field == field


def test_one_seed_range_without_wrap_around() -> None:
    """Every candidate's seed within 0..2^31-1 (what the panel's integer field holds): the last
    seed fits, one past it is refused naming the field and the range, nothing wraps to 0."""
    assert settings.MAX_SEED == 2**31 - 1
    base = settings.GenerateSettings("a person walks", 4.0, 2, 5.0, 50, seed=2**31 - 2)
    assert settings.build_request(base).seed == 2**31 - 2  # candidates use 2^31-2 and 2^31-1
    for seed, allowed in ((2**31 - 1, "0-2147483646"), (2**32 - 1, "0-2147483647")):
        with pytest.raises(InvalidArgument) as info:
            settings.build_request(base.__class__(**{**base.__dict__, "seed": seed}))
        assert info.value.field == "seed" and info.value.details["allowed"] == allowed
        assert "2147483647" in info.value.message
    for _ in range(200):  # random first seeds leave room for every candidate
        seed = settings.random_seed(8)
        assert seed >= 0 and seed + 7 <= settings.MAX_SEED


def test_explanations_say_what_to_do() -> None:
    busy = describe.explain(Busy("queue full", retry_after_s=7.2, reason="queue_full"))
    assert "busy" in busy.message and "7 s" in busy.hint
    quota = describe.explain(QuotaExceeded("10 jobs per hour", resets_at=0.0))
    assert "resets at" in quota.hint
    invalid = describe.explain(InvalidArgument("steps", "steps 900 is too many", allowed="4-200"))
    assert invalid.message.startswith("steps:") and "4-200" in invalid.hint


def test_prompt_files(tmp_path: Path) -> None:
    defaults = settings.GenerateSettings("", 4.0, 2, 5.0, 50)
    text = tmp_path / "p.txt"
    text.write_text("# header\n\nwalk forward\nwave | duration=2.5 seed=7 candidates=3\n")
    items = batch_input.load_prompts(text, defaults)
    assert [i.settings.prompt for i in items] == ["walk forward", "wave"]
    assert items[1].settings.duration_s == 2.5 and items[1].settings.seed == 7
    assert items[1].where == "p.txt:4" and items[1].index == 2
    data = tmp_path / "p.json"
    data.write_text('["jump", {"prompt": "sit", "steps": 10}]')
    assert [i.settings.steps for i in batch_input.load_prompts(data, defaults)] == [50, 10]
    bad = [("walk | speed=3\n", "unknown option"), ("walk | seed=x\n", "not a whole number"),
           ("# nothing\n", "no prompts"), ("walk | seed\n", "key=value"),
           ("walk\nwave | direct=loop\n", "p.txt:2: direct= is not read from a text prompt "
            "file: give the direction in a JSON job file")]  # fmt: skip
    for content, match in bad:
        text.write_text(content)
        with pytest.raises(BatchInputError, match=match):
            batch_input.load_prompts(text, defaults)
    with pytest.raises(BatchInputError, match="cannot read"):
        batch_input.load_prompts(tmp_path / "absent.txt", defaults)
    # A JSON count or seed that is not a whole number is refused, not cut to one.
    for entry, match in (('{"prompt": "sit", "seed": 7.5}', r"p\.json\[1\]: seed=7\.5 is not a "
                          "whole number"), ('{"prompt": "sit", "candidates": true}', "candidates"),
                         ('{"prompt": "sit", "duration_s": "long"}', "not a number")):  # fmt: skip
        data.write_text(f"[{entry}]")
        with pytest.raises(BatchInputError, match=match):
            batch_input.load_prompts(data, defaults)
    data.write_text('[{"prompt": "sit", "seed": 7.0, "steps": "12"}]')  # whole: taken
    (item,) = batch_input.load_prompts(data, defaults)
    assert (item.settings.seed, item.settings.steps) == (7, 12)


def test_synthetic_fixture_is_self_consistent() -> None:
    rotations, pelvis, positions = synthetic.takes(2, 10)
    np.testing.assert_allclose(
        forward_kinematics(synthetic.skeleton(), rotations, pelvis), positions
    )
