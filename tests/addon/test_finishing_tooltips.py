"""The foot-lock modes' tooltips say what the code does (bpy): their figures are the contact
thresholds foot lock uses, and a foot sliding at the speeds they name is planted or not as they
say (a level foot on the ground, moving at a steady speed, on the model's body)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from blender_addon.core.finishing.footlock import mode_thresholds
from blender_addon.core.motion import contacts
from blender_addon.core.motion.skeletons import MODEL_SKELETON, SOLE_MARGINS_M, model_legs
from blender_addon.finishing_props import HYMOTION_PG_finishing

FPS, FRAMES = 30.0, 30


def tooltip(mode: str) -> str:
    items = HYMOTION_PG_finishing.bl_rna.properties["foot_lock"].enum_items  # type: ignore[attr-defined]
    return str(items[mode].description)


def test_the_tooltips_quote_the_thresholds_foot_lock_uses(scene: Any) -> None:  # registered
    assert "less than 5 cm above its flat-foot height and slower than 0.3 m/s" in tooltip("AUTO")
    always = tooltip("ALWAYS")
    assert "enter contact at up to 0.6 m/s" in always
    assert "glides low and level at up to 1.5 m/s for 6 frames or more" in always
    assert "scaled by leg length" in always


def planted_frames(speed: float, mode: str) -> int:
    """Frames a foot sliding level on the ground at ``speed`` is in contact (left toe)."""
    legs = model_legs(MODEL_SKELETON)
    positions = np.zeros((FRAMES, len(MODEL_SKELETON.joint_names), 3))
    positions[..., 1] = 1.0  # the rest of the body well above the ground
    for joint in (*legs.ankle, *legs.toe):
        name = MODEL_SKELETON.joint_names[joint]
        positions[:, joint, 1] = SOLE_MARGINS_M[name] + 0.01  # on the ground, level
        positions[:, joint, 2] = speed * np.arange(FRAMES) / FPS
    found = contacts.detect_contacts(positions, FPS, legs, mode_thresholds(mode))
    return int(found.toe[:, 0].sum())


@pytest.mark.parametrize(
    ("speed", "auto", "always"),
    [(0.2, True, True), (0.45, False, True), (1.2, False, True), (1.7, False, False)],
)
def test_feet_sliding_at_the_quoted_speeds(speed: float, auto: bool, always: bool) -> None:
    assert (planted_frames(speed, "AUTO") == FRAMES) == auto
    assert (planted_frames(speed, "ALWAYS") == FRAMES) == always
    assert planted_frames(speed, "AUTO") in (0, FRAMES)  # all or nothing at a steady speed
