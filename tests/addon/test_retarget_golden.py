"""The vectorised retarget computes what the per-bone code did (no bpy; issue 9, speed).

CMU takes on five test rigs (UE5 with IK bones, in KEEP and ROOT_BONE; Mixamo in place; Auto-Rig
Pro with its IK controls keyed; Character Creator in an A-pose), held to the keyed values the
code before the speed work computed (``retarget_golden.py``); and a take retargeted with others
keys exactly what it keys alone.
"""

from __future__ import annotations

import numpy as np
import pytest

from blender_addon.core import bone_mapping, retarget
from blender_addon.core.motion import bvh_import
from tests.addon import retarget_golden, rigs

#: Float64 math reordered for speed differs in the last bits, never more.
TOLERANCE = 1e-9


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    with np.load(retarget_golden.GOLDEN) as data:
        return dict(data)


@pytest.mark.parametrize("case", retarget_golden.CASES, ids=lambda c: c.name)
def test_retarget_equals_the_recorded_figures(
    case: retarget_golden.Case, golden: dict[str, np.ndarray]
) -> None:
    now = retarget_golden.figures(case)
    assert sorted(now) == sorted(k for k in golden if k.startswith(f"{case.name}/"))
    for key, value in now.items():
        expected = golden[key]
        if value.dtype.kind in "US":
            assert value.tolist() == expected.tolist(), key
        else:
            assert value.shape == expected.shape, key
            np.testing.assert_allclose(value, expected, rtol=0, atol=TOLERANCE, err_msg=key)


def test_a_take_retargeted_with_others_equals_the_take_alone() -> None:
    case = retarget_golden.CASES[0]
    rig = rigs.rig_bones(case.rig, case.body)
    plan = retarget.plan(bvh_import.MODEL_SKELETON, rig, bone_mapping.auto_mapping(rig))
    takes = retarget_golden.takes()
    together = retarget.retarget_takes(plan, takes, case.options)
    for take, with_others in zip(takes, together, strict=True):
        (alone,) = retarget.retarget_takes(plan, [take], case.options)
        np.testing.assert_array_equal(with_others.quaternions, alone.quaternions)
        np.testing.assert_array_equal(with_others.locations, alone.locations)
