"""Foot contacts against synthetic walks with known contacts, and the skate figure."""

from __future__ import annotations

import numpy as np
import pytest

from blender_addon.core.motion import contacts

from . import synthetic


@pytest.mark.parametrize("slide", [0.0, 0.25])
@pytest.mark.parametrize("speed", [0.8, 1.0])
def test_detected_contacts_match_known_ones(slide: float, speed: float) -> None:
    walk = synthetic.walk(frames=150, speed=speed, slide=slide)
    found = contacts.detect_contacts(walk.joint_positions, synthetic.FPS, synthetic.LEGS)
    agreement = float((found.foot == walk.contacts).mean())
    assert agreement >= 0.95, agreement


def test_thresholds_scale_with_leg_length() -> None:
    """The same walk on a body twice as large is the same walk: same contacts."""
    walk = synthetic.walk(frames=120)
    base = contacts.detect_contacts(walk.joint_positions, synthetic.FPS, synthetic.LEGS)
    big = contacts.detect_contacts(
        walk.joint_positions * 2.0, synthetic.FPS, synthetic.LEGS,
        contacts.ContactThresholds().scaled(2 * contacts.REFERENCE_LEG_M),
    )  # fmt: skip
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
