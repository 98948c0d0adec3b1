"""Foot contacts against synthetic walks with known contacts, and the skate figure."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from blender_addon.core.motion import bvh_import, contacts, kinematics
from blender_addon.core.motion.skeletons import model_legs

from . import synthetic

#: The thresholds with the gliding-contact rule on (foot lock's "Always").
GLIDING = contacts.ContactThresholds(glide_speed=contacts.GLIDE_SPEED)


@pytest.mark.parametrize(
    ("slide", "thresholds"),
    [(0.0, contacts.ContactThresholds()), (0.25, contacts.ContactThresholds()), (0.0, GLIDING),
     (0.6, GLIDING), (1.0, GLIDING)],
)  # fmt: skip
@pytest.mark.parametrize("speed", [0.8, 1.0])
def test_detected_contacts_match_known_ones(
    slide: float, thresholds: contacts.ContactThresholds, speed: float
) -> None:
    walk = synthetic.walk(frames=150, speed=speed, slide=slide)
    found = contacts.detect_contacts(walk.joint_positions, synthetic.FPS, synthetic.LEGS,
                                     thresholds)  # fmt: skip
    agreement = float((found.foot == walk.contacts).mean())
    assert agreement >= 0.95, agreement


@pytest.mark.parametrize("name", ["run_cmu_02_03.bvh", "kick_cmu_10_02_daz.bvh"])
def test_gliding_adds_no_contact_to_swinging_feet(mocap_dir: Path, name: str) -> None:
    """Real capture does not slide: the rule for feet landing already sliding finds no contact
    of its own on the run's and the kick's swinging feet, at most a frame at a landing."""
    take = bvh_import.load_bvh_take(mocap_dir / name)
    positions = kinematics.joint_positions(take.skeleton, take.rotations, take.root_positions)
    legs = model_legs(take.skeleton)
    scaled = GLIDING.scaled(kinematics.leg_length(take.skeleton.rest_positions, legs.chains()))
    found = contacts.detect_contacts(positions, take.fps, legs, scaled).foot
    without = contacts.detect_contacts(positions, take.fps, legs,
                                       replace(scaled, glide_speed=0.0)).foot  # fmt: skip
    assert (found | without).sum() == found.sum()  # gliding only adds
    near = without | np.roll(without, 1, axis=0) | np.roll(without, -1, axis=0)
    assert not (found & ~near).any(), np.argwhere(found & ~near)
    assert (found & ~without).sum() <= 1


@pytest.mark.parametrize(
    ("slide", "thresholds"), [(0.0, contacts.ContactThresholds()), (0.8, GLIDING)]
)
def test_thresholds_scale_with_leg_length(
    slide: float, thresholds: contacts.ContactThresholds
) -> None:
    """The same walk on a body twice as large is the same walk: same contacts (gliding ones
    too)."""
    walk = synthetic.walk(frames=120, slide=slide)
    base = contacts.detect_contacts(walk.joint_positions, synthetic.FPS, synthetic.LEGS,
                                    thresholds)  # fmt: skip
    big = contacts.detect_contacts(
        walk.joint_positions * 2.0, synthetic.FPS, synthetic.LEGS,
        thresholds.scaled(2 * contacts.REFERENCE_LEG_M),
    )  # fmt: skip
    assert base.foot.any()
    np.testing.assert_array_equal(base.foot, big.foot)


def test_skate_sees_injected_slide_only() -> None:
    clean = synthetic.walk(frames=150)
    sliding = synthetic.walk(frames=150, slide=0.25)
    judge = clean.contacts
    before = contacts.foot_skate(clean.joint_positions, synthetic.FPS, synthetic.LEGS, during=judge)
    after = contacts.foot_skate(sliding.joint_positions, synthetic.FPS, synthetic.LEGS,
                                during=sliding.contacts)  # fmt: skip
    assert before.frames == 0 and before.distance_m == 0.0
    assert after.fraction > 0.9
    stance_frames = int(sliding.contacts.sum())
    assert after.distance_m == pytest.approx(0.25 * stance_frames / synthetic.FPS, rel=0.05)


def test_runs() -> None:
    flags = np.array([0, 1, 1, 0, 0, 1, 1, 1], dtype=bool)
    assert contacts.runs(flags) == [(1, 3), (5, 8)]
