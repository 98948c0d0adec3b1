"""BVH reading and "BVH as a take" on the real CMU clips in examples/mocap."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from blender_addon.core.bvh import write_bvh
from blender_addon.core.conversion import resample
from blender_addon.core.errors import BvhError
from blender_addon.core.motion import bvh_import, kinematics, skeletons, transfer
from shared_protocol.motion import forward_kinematics

from .conftest import CLIPS

#: (joints incl. End Sites, frames, fps) from the clips' README table (End Sites added here).
EXPECTED = {
    "walk_forward_cmu_35_01.bvh": (31, 359),
    "walk_turn_left_cmu_16_11.bvh": (31, 534),
    "run_cmu_02_03.bvh": (31, 174),
    "jump_in_place_cmu_16_01.bvh": (31, 323),
    "idle_wave_cmu_141_16.bvh": (31, 299),
    "kick_cmu_10_02_daz.bvh": (43, 591),
}


@pytest.mark.parametrize("name", CLIPS)
def test_every_bundled_clip_parses(mocap_dir: Path, name: str) -> None:
    clip = bvh_import.read_bvh(mocap_dir / name)
    joints, frames = EXPECTED[name]
    with_channels = sum(1 for c in clip.channels if c)
    assert (with_channels, clip.frames) == (joints, frames)
    assert abs(clip.fps - 120.0) < 0.01
    assert clip.values.shape == (frames, sum(len(c) for c in clip.channels))
    assert np.isfinite(clip.rotations()).all()


def test_line_endings_and_tabs_do_not_matter(mocap_dir: Path) -> None:
    text = (mocap_dir / "run_cmu_02_03.bvh").read_text()
    lf = bvh_import.parse_bvh(text)
    crlf = bvh_import.parse_bvh(text.replace("\n", "\r\n"))
    lines = text.split("\n")
    mixed = bvh_import.parse_bvh(
        "".join(line + ("\r\n" if i % 2 else "\n") for i, line in enumerate(lines)).replace(
            " ", "\t"
        )
    )
    for other in (crlf, mixed):
        assert other.names == lf.names
        np.testing.assert_array_equal(other.values, lf.values)


def test_channel_order_is_honoured() -> None:
    # One joint rotated 90° about Z then X in Z-X-Y order vs X-Y-Z order: different results.
    def clip(order: str) -> bvh_import.BvhClip:
        channels = " ".join(f"{a}rotation" for a in order)
        values = {"Z": 90, "X": 90, "Y": 0}
        frame = " ".join(str(values[a]) for a in order)
        return bvh_import.parse_bvh(
            "HIERARCHY\nROOT Hips\n{\n OFFSET 0 0 0\n CHANNELS 3 " + channels + "\n"
            " End Site\n {\n  OFFSET 0 1 0\n }\n}\nMOTION\nFrames: 1\nFrame Time: 0.1\n" + frame
        )

    y = np.array([0.0, 1.0, 0.0])
    from blender_addon.core.motion import rotations as rot

    zxy = rot.rotate(clip("ZXY").rotations()[0, 0], y)
    xyz = rot.rotate(clip("XYZ").rotations()[0, 0], y)
    # Rz(90)·Rx(90)·y = Rz(90)·z = z ; Rx(90)·Rz(90)·y = Rx(90)·(−x) = −x
    np.testing.assert_allclose(zxy, [0.0, 0.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(xyz, [-1.0, 0.0, 0.0], atol=1e-12)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("HIERARCHY\nROOT Hips\n{\n OFFSET 0 0 0\n}\n", "no MOTION"),
        ("HIERARCHY\nROOT Hips\n{\n OFFSET 0 zero 0\n}\nMOTION\nFrames: 1\nFrame Time: 0.1\n",
         "'zero' is not a number"),
        ("HIERARCHY\nROOT Hips\n{\n OFFSET 0 0 0\n CHANNELS 3 Xrotation Yrotation Zrotation\n}"
         "\nMOTION\nFrames: 2\nFrame Time: 0.1\n1 2 3\n", "3 values for 2 frames x 3 channels"),
        ("HIERARCHY\nROOT Hips\n{\n OFFSET 0 0 0\n CHANNELS 1 Wrotation\n}\nMOTION\n",
         "unknown channel 'wrotation'"),
        ("ROOT Hips\n{\n}\nMOTION\nFrames: 1\nFrame Time: 0.1\n", "HIERARCHY"),
    ],
)  # fmt: skip
def test_malformed_files_are_refused_saying_what_is_wrong(text: str, words: str) -> None:
    with pytest.raises(BvhError, match=words.replace("(", r"\(")):
        bvh_import.parse_bvh(text)


def test_a_non_humanoid_is_refused_naming_the_missing_joint() -> None:
    clip = bvh_import.parse_bvh(
        "HIERARCHY\nROOT Hips\n{\n OFFSET 0 0 0\n CHANNELS 3 Zrotation Xrotation Yrotation\n"
        " JOINT Tail\n {\n  OFFSET 0 0 -1\n  CHANNELS 3 Zrotation Xrotation Yrotation\n"
        "  End Site\n  {\n   OFFSET 0 0 -1\n  }\n }\n}\nMOTION\nFrames: 2\nFrame Time: 0.1\n"
        "0 0 0 0 0 0\n0 0 0 0 0 0\n"
    )
    with pytest.raises(BvhError, match="no joint for the model's 'L_Hip'"):
        bvh_import.bvh_to_take(clip)


def test_cgspeed_tpose_frame_is_skipped_only_where_present(mocap_dir: Path) -> None:
    assert bvh_import.is_tpose_frame(bvh_import.read_bvh(mocap_dir / "walk_forward_cmu_35_01.bvh"))
    assert not bvh_import.is_tpose_frame(
        bvh_import.read_bvh(mocap_dir / "walk_turn_left_cmu_16_11.bvh")
    )


@pytest.mark.parametrize("name", CLIPS)
def test_bvh_as_a_take_follows_the_bvh_bones(mocap_dir: Path, name: str) -> None:
    clip = bvh_import.read_bvh(mocap_dir / name)
    take = bvh_import.bvh_to_take(clip)
    frames = take.rotations.shape[0]
    first = 1 if take.skipped_tpose else 0
    assert frames == int(np.floor((clip.frames - 1 - first) / clip.fps * 30 + 1e-6)) + 1
    assert take.rotations.dtype == np.float32 and take.rotations.shape == (frames, 22, 4)
    # what the wire would carry: joint positions are the shared FK of rotations + root
    fk = forward_kinematics(take.skeleton, take.rotations, take.root_positions)
    np.testing.assert_allclose(take.joint_positions, fk, atol=1e-5)
    # grounded like the daemon's output: the lowest point of the body touches y = 0
    margins = skeletons.sole_margins(take.skeleton)
    assert abs(float((take.joint_positions[..., 1] - margins).min())) < 1e-5
    # bone directions against the BVH's own, at the same 30 fps times
    local, root = resample(clip.rotations()[first:], clip.root_positions()[first:], clip.fps, 30)
    source = kinematics.joint_positions(clip.skeleton(), local, root)
    match = bvh_import.match_humanoid(clip)
    calibration = bvh_import.bvh_calibration(clip, match)
    limbs = {"L_Hip", "R_Hip", "L_Knee", "R_Knee", "L_Shoulder", "R_Shoulder", "L_Elbow",
             "R_Elbow"}  # fmt: skip
    aimed = [a for a in calibration.aims if take.skeleton.joint_names[a[0]] in limbs]
    assert len(aimed) == 8
    errors = transfer.bone_direction_errors(
        source, take.joint_positions.astype(np.float64), aimed, calibration.align
    )
    assert float(np.median(errors)) <= 0.5 and float(errors.max()) <= 1.0


def _z_up_text(clip: bvh_import.BvhClip) -> str:
    """``clip`` rewritten Z up (as Blender's BVH exporter writes), channels Z-X-Y."""
    from blender_addon.core.bvh import matrices_to_euler_zxy
    from blender_addon.core.motion import rotations as rot

    turn = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # Y up -> Z up
    local = rot.to_matrix(clip.rotations())
    euler = np.degrees(matrices_to_euler_zxy(turn @ local @ turn.T))  # (F, J, 3)
    root = clip.root_positions() @ turn.T
    lines, columns = ["HIERARCHY"], [root]

    def joint(j: int, depth: int) -> None:
        pad = " " * depth
        offset = " ".join(f"{v:.6f}" for v in turn @ clip.offsets[j])
        if not clip.channels[j]:
            lines.extend([f"{pad}End Site", f"{pad}{{", f"{pad} OFFSET {offset}", f"{pad}}}"])
            return
        kind = "ROOT" if j == 0 else "JOINT"
        extra = "Xposition Yposition Zposition " if j == 0 else ""
        count = 6 if j == 0 else 3
        lines.extend([f"{pad}{kind} {clip.names[j]}", f"{pad}{{", f"{pad} OFFSET {offset}",
                      f"{pad} CHANNELS {count} {extra}Zrotation Xrotation Yrotation"])  # fmt: skip
        columns.append(euler[:, j])
        for child in np.flatnonzero(clip.parents == j):
            joint(int(child), depth + 1)
        lines.append(f"{pad}}}")

    joint(0, 0)
    values = np.concatenate(columns, axis=1)
    lines += ["MOTION", f"Frames: {clip.frames}", f"Frame Time: {clip.frame_time}"]
    lines += [" ".join(f"{v:.6f}" for v in row) for row in values]
    return "\n".join(lines) + "\n"


def test_a_z_up_bvh_gives_the_same_take(mocap_dir: Path) -> None:
    clip = bvh_import.read_bvh(mocap_dir / "walk_turn_left_cmu_16_11.bvh")
    upright = bvh_import.bvh_to_take(clip)
    lying = bvh_import.bvh_to_take(bvh_import.parse_bvh(_z_up_text(clip)))
    np.testing.assert_allclose(lying.joint_positions, upright.joint_positions, atol=2e-4)


def test_the_addons_own_bvh_export_comes_back_as_the_same_take(
    mocap_dir: Path, tmp_path: Path
) -> None:
    # The exporter writes the model's SMPL-H joint names (Pelvis, L_Hip, ...), Y up, centimetres.
    original = bvh_import.load_bvh_take(mocap_dir / "walk_forward_cmu_35_01.bvh")
    exported = tmp_path / "take.bvh"
    exported.write_text(
        write_bvh(original.skeleton, original.rotations, original.root_positions, original.fps)
    )
    again = bvh_import.load_bvh_take(exported)
    assert again.convention == "model"
    assert again.unmapped == ()
    assert again.rotations.shape == original.rotations.shape
    error = np.linalg.norm(again.joint_positions - original.joint_positions, axis=-1)
    assert error.max() < 0.001, f"joints moved up to {error.max() * 1000:.2f} mm"
