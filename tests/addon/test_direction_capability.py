"""Direction against a daemon whose welcome lacks the ``constraints`` capability (an older
daemon, which would ignore constraints and generate undirected motion): the panel's Generate and
the batch's directed prompts fail with ``unsupported_version`` and nothing is sent; undirected
work on the same daemon goes on (docs/addon.md, Direction and Directed jobs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import bpy
import pytest

from blender_addon import directing_ui, history, prefs
from blender_addon.core.session import ServerInfo
from tests.addon.test_addon_batch import run_batch
from tests.addon.test_addon_daemon import set_panel
from tests.addon.test_addon_scene import make_result

MOCAP = Path(__file__).resolve().parents[2] / "examples" / "mocap"
WALK, KICK = MOCAP / "walk_forward_cmu_35_01.bvh", MOCAP / "kick_cmu_10_02_daz.bvh"
#: This daemon speaks protocol 1.1 (what it is) but leaves the capability out of its welcome.
REFUSAL = (
    "the daemon speaks protocol 1.1 without the 'constraints' capability, so it would ignore "
    "the constraints and generate undirected motion; upgrade the daemon, or send the request "
    "without constraints"
)


@pytest.fixture
def old_daemon(start_daemon: Any) -> Any:
    return start_daemon("--drop-capability", "constraints")


def _queued(daemon: Any) -> list[dict[str, Any]]:
    return [e for e in daemon.log_events() if e["event"] == "job_queued"]


@pytest.mark.parametrize("how", ["current_pose", "loop", "timeline"])
def test_the_panel_refuses_direction_and_sends_nothing(
    scene: Any, old_daemon: Any, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    monkeypatch.setenv(prefs.ADDRESS_ENV, old_daemon.address)
    (source,) = history.add_result(scene, make_result(1, 60), ServerInfo())
    history.apply_take(scene, source)
    options = directing_ui.direction(scene)
    if how == "current_pose":
        scene.frame_set(11)
        options.start = "CURRENT"
    elif how == "loop":
        options.loop = True
    else:
        options.timeline.add().prompt = "a person waves"
    set_panel(scene, steps=4, candidates=1)
    with pytest.raises(RuntimeError, match="without the 'constraints' capability"):
        bpy.ops.hy_motion.generate()
    settings = scene.hy_motion
    assert settings.status_state == "failed"
    assert settings.status_message == REFUSAL
    assert settings.status_hint == "Install matching versions of the add-on and the daemon."
    assert [t.name for t in settings.takes] == [source.name]  # nothing added, nothing changed
    assert not _queued(old_daemon)
    # The same daemon serves the same prompt undirected.
    options.start, options.loop = "NONE", False
    options.timeline.clear()
    assert bpy.ops.hy_motion.generate() == {"FINISHED"}
    assert len(settings.takes) == 2 and len(_queued(old_daemon)) == 1


@pytest.mark.parametrize(
    "flags",
    [
        ["--start-from", str(WALK)],
        ["--start-from", f"{WALK}:-1", "--end-pose", f"{KICK}:40", "--end-frame", "40"],
        ["--path", "20:0.5,-0.5", "--path", "40:1,-1"],
        ["--direct-loop"],
        ["--segment", "a person waves:2"],
    ],
    ids=["start-from", "end-pose", "path", "direct-loop", "segment"],
)
def test_the_batch_fails_directed_prompts_and_sends_nothing(
    tmp_path: Path, old_daemon: Any, flags: list[str]
) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a person walks\na person runs\n")
    out = tmp_path / "out"
    result = run_batch("--prompts", str(prompts), "--out", str(out),
                       "--address", old_daemon.address, "--duration", "2", "--steps", "4",
                       "--candidates", "1", "--seed", "5", "--formats", "bvh", *flags)  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert [(i["where"], i["code"], i["files"]) for i in summary["items"]] == [
        ("prompts.txt:1", "unsupported_version", []),
        ("prompts.txt:2", "unsupported_version", []),
    ]
    assert all(i["error"].startswith(REFUSAL) for i in summary["items"])
    assert f"[1] FAILED prompts.txt:1 seed 5: {REFUSAL}" in result.stdout
    assert not _queued(old_daemon)
    assert not list(out.glob("*/*.bvh"))


def test_a_job_file_fails_its_directed_item_alone(tmp_path: Path, old_daemon: Any) -> None:
    jobs = tmp_path / "jobs.json"
    jobs.write_text(json.dumps([{"prompt": "a person walks", "direct": {"start_from": str(WALK)}},
                                "a person waves"]))  # fmt: skip
    out = tmp_path / "out"
    result = run_batch("--prompts", str(jobs), "--out", str(out), "--address", old_daemon.address,
                       "--duration", "2", "--steps", "4", "--candidates", "1", "--seed", "5",
                       "--formats", "bvh")  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    directed, plain = json.loads((out / "summary.json").read_text())["items"]
    assert (directed["where"], directed["code"]) == ("jobs.json[1]", "unsupported_version")
    assert (plain["where"], plain["error"]) == ("jobs.json[2]", "")
    assert len(_queued(old_daemon)) == 1  # only the undirected prompt reached the daemon
