"""What the sidebar panel draws. The bpy module never draws a region, so Blender's UILayout
cannot exist here: a layout that records each drawn property and operator stands in for it,
and the panel's own draw() runs against the real scene settings."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from blender_addon import finishing_ui, rig_ui, ui


class RecordingLayout:
    """The UILayout calls the panels make, recording the names of what they draw."""

    def __init__(self) -> None:
        self.drawn: list[str] = []
        self.scale_y = 1.0

    def prop(self, data: Any, name: str, **options: Any) -> None:
        assert hasattr(data, name), name  # a name Blender would reject
        self.drawn.append(name)

    def operator(self, idname: str, **options: Any) -> SimpleNamespace:
        self.drawn.append(idname)
        return SimpleNamespace()

    def row(self, **options: Any) -> RecordingLayout:
        return self

    column = box = row

    def label(self, *args: Any, **options: Any) -> None:
        self.drawn.append(options.get("text", ""))

    progress = template_list = label


def drawn_by(panel: type, context: Any) -> list[str]:
    layout = RecordingLayout()
    panel.draw(SimpleNamespace(layout=layout, _draw_status=ui.HYMOTION_PT_main._draw_status),
               context)  # fmt: skip
    return layout.drawn


def test_the_panel_draws_every_setting_docs_addon_md_describes(scene: Any) -> None:
    context = SimpleNamespace(scene=scene)
    scene.hy_motion.seed_mode = "FIXED"
    drawn = drawn_by(ui.HYMOTION_PT_main, context)
    for name in ("prompt", "duration_s", "candidates", "seed_mode", "seed", "guidance", "steps",
                 "target", "side_by_side", "spacing", "hy_motion.generate"):  # fmt: skip
        assert name in drawn, (name, drawn)
    scene.hy_motion.seed_mode = "RANDOM"
    assert "seed" not in drawn_by(ui.HYMOTION_PT_main, context)


def test_the_take_panels_show_the_active_take_only_when_there_is_one(scene: Any) -> None:
    context = SimpleNamespace(scene=scene)
    assert "foot_lock" not in drawn_by(finishing_ui.HYMOTION_PT_finishing, context)
    assert "hy_motion.import_bvh" in drawn_by(finishing_ui.HYMOTION_PT_finishing, context)
    scene.hy_motion.takes.add()
    scene.hy_motion.active_take = 0
    scene.hy_motion.takes[0].prompt = "a person waves"
    assert "foot_lock" in drawn_by(finishing_ui.HYMOTION_PT_finishing, context)
    assert "a person waves" in drawn_by(ui.HYMOTION_PT_takes, context)
    scene.hy_motion.active_take = 1  # past the end: no take is selected
    assert "foot_lock" not in drawn_by(finishing_ui.HYMOTION_PT_finishing, context)
    assert "a person waves" not in drawn_by(ui.HYMOTION_PT_takes, context)


def test_the_panel_defaults_and_ranges_are_the_documented_ones(scene: Any) -> None:
    """docs/addon.md, *Artist guide*: each field's default and the range it stops at."""
    documented = {  # name: (default, soft and hard minimum, maximum)
        "duration_s": (4.0, 20 / 30, 12.0), "candidates": (4, 1, 8), "guidance": (5.0, 1.0, 10.0),
        "steps": (50, 4, 200), "seed": (0, 0, 2**31 - 1), "spacing": (1.0, 0.1, None),
    }  # fmt: skip
    properties = type(scene.hy_motion).bl_rna.properties
    for name, (default, low, high) in documented.items():
        field = properties[name]
        assert field.default == pytest.approx(default), name
        assert field.hard_min == pytest.approx(low, abs=1e-6), name
        if high is not None:
            assert field.hard_max == pytest.approx(high), name
    scene.hy_motion.prompt = "x" * 1001  # the field stops at 1000 characters
    assert len(scene.hy_motion.prompt) == 1000
    scene.hy_motion.prompt = "é" * 1000  # Blender counts UTF-8 bytes: two each
    assert len(scene.hy_motion.prompt) == 500


def test_the_preferences_are_the_documented_ones(scene: Any) -> None:
    """docs/addon.md, *Install* step 3: what the preferences show, their defaults and ranges,
    and the model's license terms."""
    from blender_addon import prefs

    properties = prefs.HYMOTION_AP_preferences.bl_rna.properties
    documented = {"connect_timeout_s": (1.0, 0.2, 30.0), "job_timeout_s": (900.0, 10.0, 86400.0)}
    for name, (default, low, high) in documented.items():
        field = properties[name]
        assert (field.default, field.hard_min, field.hard_max) == pytest.approx(
            (default, low, high)
        ), name
    assert properties["address"].default == "tcp://127.0.0.1:7878"
    assert properties["export_dir"].default == "//hy_motion_exports/"
    names = ("address", "artist", "server_key", "client_secret_file", "connect_timeout_s",
             "job_timeout_s", "export_dir")  # fmt: skip
    labels = [properties[n].name for n in names]
    assert labels == ["Daemon address", "Artist name", "Server public key", "Your key pair",
                      "Connect timeout", "Job timeout", "Export folder"]  # fmt: skip
    layout = RecordingLayout()
    shown = SimpleNamespace(layout=layout, **{n: "" for n in names})  # no key pair chosen
    prefs.HYMOTION_AP_preferences.draw(shown, SimpleNamespace())  # type: ignore[arg-type]
    assert [n for n in layout.drawn if n in names] == list(names)
    assert {"hy_motion.generate_keys", "hy_motion.import_keys"} <= set(layout.drawn)
    terms = " ".join(layout.drawn)
    assert "Tencent HY-Motion 1.0 Community License" in terms
    assert "not for use in the EU, the UK or South Korea; over 1M monthly users" in terms


def test_the_character_section_shows_with_target_selected_armature(scene: Any) -> None:
    context = SimpleNamespace(scene=scene)
    assert not rig_ui.HYMOTION_PT_character.poll(context)  # type: ignore[arg-type]
    scene.hy_motion.target = "SELECTED_ARMATURE"
    assert rig_ui.HYMOTION_PT_character.poll(context)  # type: ignore[arg-type]
    drawn = drawn_by(rig_ui.HYMOTION_PT_character, context)
    for name in ("rig", "hy_motion.use_character", "root_motion", "pin_feet", "relax_fingers",
                 "key_ik", "ik_limbs", "hy_motion.map_character", "preset_folder", "preset",
                 "hy_motion.load_mapping", "hy_motion.save_mapping"):  # fmt: skip
        assert name in drawn, (name, drawn)


def test_every_operator_and_its_properties_are_documented(scene: Any) -> None:
    """docs/addon.md, *Operators (for scripts)*: exactly the registered operators, each with
    every property a script can set."""
    import re
    from pathlib import Path

    import bpy

    doc = (Path(__file__).resolve().parents[2] / "docs" / "addon.md").read_text(encoding="utf-8")
    section = doc.split("## Operators (for scripts)", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = line.split("|")
        if len(cells) > 3 and cells[1].strip().startswith("`"):
            for name in re.findall(r"`([a-z_]+)`", cells[1]):
                rows[name] = cells[3]
    registered = {
        name: getattr(bpy.ops.hy_motion, name).get_rna_type() for name in dir(bpy.ops.hy_motion)
    }
    assert sorted(rows) == sorted(registered)
    for name, rna in registered.items():
        settable = [p.identifier for p in rna.properties
                    if p.identifier != "rna_type" and not p.is_hidden]  # fmt: skip
        documented = re.findall(r"`([a-z_]+)`(?!\))", rows[name])
        assert [p for p in settable if p not in documented] == [], name


def test_take_operators_wait_for_a_take(scene: Any) -> None:
    import bpy

    takes = ("apply_take", "compare_takes", "rename_take", "delete_take", "export_takes",
             "finish_take")  # fmt: skip
    assert not any(getattr(bpy.ops.hy_motion, name).poll() for name in takes)
    assert not bpy.ops.hy_motion.cancel.poll()
    scene.hy_motion.takes.add()
    assert all(getattr(bpy.ops.hy_motion, name).poll() for name in takes)
