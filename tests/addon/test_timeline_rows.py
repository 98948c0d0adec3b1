"""A timeline row without a prompt (empty or only spaces) is refused naming the row, as an empty
prompt is: in the panel before anything is sent, in the batch with exit code 2 before anything
is generated or written (``--segment``, ``--timeline FILE``, a job file's ``timeline``)."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import bpy
import pytest

from blender_addon import directing_ui
from blender_addon.core import directing
from blender_addon.core.settings import GenerateSettings
from tests.addon.test_addon_batch import daemon, run_batch  # noqa: F401 (fixture)
from tests.addon.test_addon_daemon import set_panel


def _unused_address() -> str:
    with socket.socket() as probe:  # nobody listens: a refusal must come before connecting
        probe.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{probe.getsockname()[1]}"


@pytest.mark.parametrize("blank", ["", "   ", "\t "])
def test_the_panel_refuses_a_row_without_a_prompt_naming_it(scene: Any, blank: str) -> None:
    rows = directing_ui.direction(scene).timeline
    for prompt in ("a person waves", blank, "a person sits down"):
        rows.add().prompt = prompt
    settings = GenerateSettings("a person walks", 2.0, candidates=1, guidance=5.0, steps=4)
    with pytest.raises(directing.DirectionError) as caught:
        directing_ui.directed_settings(scene, settings)
    assert caught.value.details["field"] == "timeline"
    assert str(caught.value) == (
        "Timeline row 2 has no prompt: type what happens next, or remove the row (−)"
    )
    rows[1].prompt = "  a person turns  "
    directed = directing_ui.directed_settings(scene, settings)
    assert directed.constraints is not None
    assert [row.prompt for row in directed.constraints.timeline] == [
        "a person waves", "a person turns", "a person sits down",
    ]  # fmt: skip


def test_generate_refuses_it_and_sends_nothing(scene: Any, daemon: Any, monkeypatch: Any) -> None:  # noqa: F811
    from blender_addon import prefs

    monkeypatch.setenv(prefs.ADDRESS_ENV, daemon.address)
    set_panel(scene, steps=4, candidates=1)
    directing_ui.direction(scene).timeline.add().prompt = "   "
    with pytest.raises(RuntimeError, match="Timeline row 1 has no prompt"):
        bpy.ops.hy_motion.generate()
    assert scene.hy_motion.status_state == "failed"
    assert scene.hy_motion.status_message.startswith("Timeline row 1 has no prompt")
    assert scene.hy_motion.status_hint == "Fix it in the HY-Motion panel's Direction section."
    assert not len(scene.hy_motion.takes)
    assert not [e for e in daemon.log_events() if e["event"] == "job_queued"]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("segment", "error: --segment: the prompt before ':' is empty in '   :2': type what "
                    "happens next, or remove the row"),
        ("timeline.txt", "error: --timeline rows.txt:2: the prompt before ':' is empty in ':2': "
                         "type what happens next, or remove the row"),
        ("timeline.json", "error: --segment/--timeline: direct.timeline[1].prompt is empty: type "
                          "what happens next, or remove the row"),
        ("job", "error: jobs.json[1]: direct.timeline[1].prompt is empty: type what happens "
                "next, or remove the row"),
    ],
)  # fmt: skip
def test_the_batch_refuses_it_with_exit_2(tmp_path: Path, source: str, message: str) -> None:
    rows = [{"prompt": "a person waves", "duration_s": 2}, {"prompt": "   ", "duration_s": 2}]
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a person walks\n")
    flags: list[str] = []
    if source == "segment":
        flags = ["--segment", "a person waves:2", "--segment", "   :2"]
    elif source == "timeline.txt":
        (tmp_path / "rows.txt").write_text("a person waves:2\n   :2\n")
        flags = ["--timeline", str(tmp_path / "rows.txt")]
    elif source == "timeline.json":
        (tmp_path / "rows.json").write_text(json.dumps(rows))
        flags = ["--timeline", str(tmp_path / "rows.json")]
    else:
        prompts = tmp_path / "jobs.json"
        prompts.write_text(json.dumps([{"prompt": "a person walks", "direct": {"timeline": rows}}]))
    out = tmp_path / "out"
    result = run_batch("--prompts", str(prompts), "--out", str(out),
                       "--address", _unused_address(), *flags)  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.splitlines()[0].startswith(message), result.stderr
    assert not out.exists()  # nothing generated or written
