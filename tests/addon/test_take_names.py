"""Every take has its own name (bpy): a new take or a rename that would repeat another take's
name gets Blender's ``.001`` numbering, its Actions follow, and Into Take (looked up by name)
finds exactly the take chosen; a file with two takes of one name (saved before) is refused in
plain words instead of taking the first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bpy
import pytest

from blender_addon import directing_ui, history
from blender_addon.core import directing, naming
from blender_addon.core.session import ServerInfo
from blender_addon.props import scene_settings
from tests.addon.test_addon_scene import make_result


def test_unique_name_numbers_like_blender() -> None:
    assert naming.unique_name("walk", []) == "walk"
    assert naming.unique_name("walk", ["walk"]) == "walk.001"
    assert naming.unique_name("walk", ["walk", "walk.001", "walk.003"]) == "walk.002"
    assert naming.unique_name("walk.001", ["walk", "walk.001"]) == "walk.002"  # renumbered
    assert naming.unique_name("v1.5", ["v1.5"]) == "v1.5.001"  # not a .NNN number
    assert naming.unique_name(".001", [".001"]) == ".001.001"


def test_the_same_prompt_and_seed_twice_make_two_names(scene: Any) -> None:
    first = history.add_result(scene, make_result(2), ServerInfo())
    again = history.add_result(scene, make_result(2), ServerInfo())  # same prompt and seeds
    names = [t.name for t in scene_settings(scene).takes]
    assert names == ["a_person_walks_s100", "a_person_walks_s101",
                     "a_person_walks_s100.001", "a_person_walks_s101.001"]  # fmt: skip
    assert [t.action.name for t in again] == [f"HYM {n}" for n in names[2:]]
    assert first[0].action.name == "HYM a_person_walks_s100"


def test_a_rename_to_a_taken_name_is_numbered_and_the_actions_follow(scene: Any) -> None:
    takes = history.add_result(scene, make_result(3), ServerInfo())
    takes[1].name = "hero walk"
    takes[2].name = "hero walk"  # as the takes list's double-click rename sets it
    assert (takes[1].name, takes[2].name) == ("hero walk", "hero walk.001")
    assert (takes[1].action.name, takes[2].action.name) == ("HYM hero walk", "HYM hero walk.001")
    takes[0].name = "hero walk.001"
    assert takes[0].name == "hero walk.002" and takes[0].action.name == "HYM hero walk.002"
    takes[2].name = "hero walk.001"  # its own name again: unchanged
    assert takes[2].name == "hero walk.001"
    assert bpy.ops.hy_motion.rename_take(index=0, name="hero walk") == {"FINISHED"}
    assert takes[0].name == "hero walk.002"  # the operator renames through the same rule
    takes[1].name = " "  # cleared: back to its first name, which is free
    assert takes[1].name == "a_person_walks_s101"


def test_into_take_finds_the_take_chosen(scene: Any) -> None:
    history.add_result(scene, make_result(1), ServerInfo())
    history.add_result(scene, make_result(1), ServerInfo())
    takes = scene_settings(scene).takes
    assert directing_ui._take_named(scene, "a_person_walks_s100.001") == takes[1]
    assert directing_ui._take_named(scene, "a_person_walks_s100") == takes[0]
    # Two takes of one name can only come from a file saved before names were unique; the
    # stored name is set directly here, as such a file holds it (no rename rule runs).
    takes[1]["name"] = "a_person_walks_s100"
    with pytest.raises(directing.DirectionError, match="2 takes are named 'a_person_walks_s100'"):
        directing_ui._take_named(scene, "a_person_walks_s100")


def test_file_stems_from_take_names() -> None:
    assert naming.file_stem("a_person_walks_s7") == "a_person_walks_s7"  # the batch's names
    assert naming.file_stem("walk.001") == "walk.001"
    assert naming.file_stem("Hero Run/2") == "hero_run_2"
    assert naming.file_stem("..Ünïcödé..") == "unicode"
    assert naming.file_stem("///") == "take"
    assert len(naming.file_stem("x" * 200)) == naming.FILE_STEM_CHARS
    # Names that only the file system would confuse are numbered, in the history's order.
    assert naming.export_stems(["Walk", "walk", "walk.001"]) == ["walk", "walk.001", "walk.002"]


def test_takes_of_one_prompt_and_seed_export_to_their_own_files(scene: Any, tmp_path: Path) -> None:
    """The same prompt and seed twice: the second take's files no longer collide with the
    first's ("already exists"); each file is named after its take."""
    history.add_result(scene, make_result(1), ServerInfo())
    history.add_result(scene, make_result(1), ServerInfo())  # same prompt and seed
    takes = list(scene_settings(scene).takes)
    history.export_job(scene, takes, tmp_path, ("FBX", "BVH")).run_to_end()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "a_person_walks_s100.001.bvh", "a_person_walks_s100.001.fbx",
        "a_person_walks_s100.bvh", "a_person_walks_s100.fbx",
    ]  # fmt: skip
    takes[1].name = "Hero Run"
    (path,) = history.export_take(scene, takes[1], tmp_path, ("BVH",))
    assert path.name == "hero_run.bvh"
