"""One error code per meaning, each documented (no bpy): every error class of the add-on has a
code no other meaning uses, and docs/addon.md's *Error codes* table lists exactly the codes the
add-on can report."""

from __future__ import annotations

import re
from pathlib import Path

from blender_addon.core import errors
from blender_addon.core.protocol import errors as wire_errors
from blender_addon.core.protocol import keys

DOC = Path(__file__).resolve().parents[2] / "docs" / "addon.md"


def own_classes() -> list[type[errors.HYMotionError]]:
    """The add-on's error classes, and the client-side ones of the shared protocol it shows."""
    found = [c for c in vars(errors).values()
             if isinstance(c, type) and issubclass(c, errors.HYMotionError)
             and c.__module__ == errors.__name__]  # fmt: skip
    return [*found, keys.KeyFileError, wire_errors.DaemonUnreachable]


def documented_codes() -> list[str]:
    section = DOC.read_text(encoding="utf-8").split("## Error codes", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([a-z_]+)` \|", section, re.M)


def test_every_meaning_has_its_own_code() -> None:
    codes = [c.code for c in own_classes()]
    assert len(codes) == len(set(codes)), sorted(codes)
    assert "bad_mapping" not in codes  # merged into bone_mapping: one code per meaning


def test_the_error_codes_table_lists_exactly_these_codes() -> None:
    documented = documented_codes()
    assert len(documented) == len(set(documented))
    assert sorted(documented) == sorted(c.code for c in own_classes())


def test_hints_lead_to_the_preferences_as_blender_shows_them() -> None:
    """A hint naming a preference gives its path in Blender and its label as docs/addon.md
    (and the preferences) show it."""
    doc = DOC.read_text(encoding="utf-8")
    for cls in own_classes():
        for place in re.findall(r"Preferences > [^,;().]+", cls.hint):
            assert place.startswith(
                ("Preferences > Add-ons > HY-Motion", "Preferences > System > Network")
            ), (cls.__name__, place)
            if place.startswith("Preferences > Add-ons > HY-Motion"):
                setting = place.removeprefix("Preferences > Add-ons > HY-Motion").strip(" >")
                assert not setting or f"**{setting}**" in doc, (cls.__name__, setting)
