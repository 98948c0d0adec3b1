"""The headless batch as users run it: a subprocess under the bpy module, real daemon."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import bpy
import pytest

from tests.addon.conftest import StartDaemon
from tests.support import FAIL_MARKER, DaemonProcess

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def daemon(start_daemon: StartDaemon) -> DaemonProcess:
    return start_daemon()


def run_batch(*args: str, entry: str = "module") -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "blender_addon.batch"] if entry == "module" else [
        sys.executable, str(ROOT / "blender_addon" / "batch.py"), "--"
    ]  # fmt: skip
    return subprocess.run([*command, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_batch_writes_everything_and_exits_0(
    tmp_path: Path, daemon: DaemonProcess, addon: None
) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# two prompts\na person walks\na person waves | candidates=3 seed=5\n")
    out = tmp_path / "out"
    common = ["--prompts", str(prompts), "--out", str(out), "--address", daemon.address,
              "--duration", "1", "--steps", "5", "--seed", "11"]  # fmt: skip
    result = run_batch(*common, entry="script")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Sampling" in result.stdout and "done: 5 item(s) succeeded, 0 failed" in result.stdout
    # The lines docs/addon.md describes, in their order.
    lines = result.stdout.splitlines()
    own = [line for line in lines if line.startswith(("connected: ", "[", "done: "))]  # not bpy's
    assert own[0].startswith("connected: daemon ")
    assert "[2/2] 'a person waves' seed 6: ok" in lines
    assert (
        lines[-1] == f"done: 5 item(s) succeeded, 0 failed; summary: {out.resolve()}/summary.json"
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ok"] and summary["failures"] == [] and len(summary["items"]) == 5
    # The fields docs/addon.md lists (no finishing or character flags given: none of theirs).
    assert sorted(summary) == ["character", "daemon", "failures", "finishing", "items", "ok",
                               "seconds"]  # fmt: skip
    assert summary["character"] is None
    assert sorted(summary["items"][0]) == ["candidate", "error", "files", "frames", "job_id",
                                           "model", "prompt", "prompt_index", "seed",
                                           "untrained", "where"]  # fmt: skip
    # The daemon as its welcome described it; the welcome carries no queue depth (null).
    assert summary["daemon"]["model"] == "test" and summary["daemon"]["queue_depth"] is None
    assert sorted(summary["daemon"]) == ["device", "model", "model_label", "queue_depth",
                                         "untrained", "version"]  # fmt: skip
    first = out / "001_a_person_walks"
    assert sorted(p.name for p in first.iterdir()) == [
        "001_a_person_walks.blend", "a_person_walks_s11.bvh", "a_person_walks_s11.fbx",
        "a_person_walks_s12.bvh", "a_person_walks_s12.fbx",
    ]  # fmt: skip
    assert (out / "002_a_person_waves" / "002_a_person_waves.blend").is_file()
    assert (out / "002_a_person_waves" / "a_person_waves_s7.fbx").stat().st_size > 10_000
    # Absolute paths in the summary, and the log names the files as they are on disk.
    files = [Path(f) for item in summary["items"] for f in item["files"]]
    assert len(files) == 15 and all(f.is_absolute() and f.is_file() for f in files)
    assert f"wrote {first.resolve() / 'a_person_walks_s12.fbx'}" in result.stdout
    assert ".part" not in result.stdout, result.stdout
    # Opened with the add-on, a .blend shows the settings that made its takes.
    bpy.ops.wm.open_mainfile(filepath=str(out / "002_a_person_waves" / "002_a_person_waves.blend"))
    settings = bpy.context.scene.hy_motion
    assert (settings.prompt, settings.candidates, settings.steps) == ("a person waves", 3, 5)
    assert (settings.seed_mode, settings.seed, settings.active_take) == ("FIXED", 5, 0)
    assert settings.duration_s == pytest.approx(1.0) and settings.guidance == pytest.approx(5.0)
    assert [t.seed for t in settings.takes] == ["5", "6", "7"]


def test_an_existing_output_stops_the_batch_before_anything_is_generated(
    tmp_path: Path, daemon: DaemonProcess
) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a person walks\na person waves | seed=5\n")
    out = tmp_path / "out"
    common = ["--prompts", str(prompts), "--out", str(out), "--address", daemon.address,
              "--duration", "1", "--steps", "5", "--seed", "11",
              "--formats", "blend,bvh"]  # fmt: skip
    assert run_batch(*common).returncode == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    jobs = len([e for e in daemon.log_events() if e["event"] == "job_queued"])
    # Again into the same folder: refused up front (exit 2), nothing generated or replaced.
    again = run_batch(*common)
    assert again.returncode == 2, again.stdout + again.stderr
    assert "7 output file(s) already exist" in again.stderr and "--overwrite" in again.stderr
    assert str((out / "summary.json").resolve()) in again.stderr
    assert "Confirm" not in again.stderr and again.stdout == ""
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert len([e for e in daemon.log_events() if e["event"] == "job_queued"]) == jobs
    # Without the earlier summary, the other outputs still stop it.
    (out / "summary.json").unlink()
    assert run_batch(*common).returncode == 2
    assert not (out / "summary.json").exists()
    # --overwrite replaces them.
    replaced = run_batch(*common, "--overwrite")
    assert replaced.returncode == 0, replaced.stdout + replaced.stderr
    assert json.loads((out / "summary.json").read_text())["ok"]


def test_batch_failures_are_listed_and_exit_1(tmp_path: Path, daemon: DaemonProcess) -> None:
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps(["a person sits", f"broken {FAIL_MARKER}",
                                   {"prompt": "too long", "duration_s": 99},
                                   {"prompt": "no takes", "candidates": 0}]))  # fmt: skip
    out = tmp_path / "out"
    result = run_batch("--prompts", str(prompts), "--out", str(out), "--address", daemon.address,
                       "--duration", "1", "--steps", "5", "--candidates", "1", "--seed", "21",
                       "--formats", "bvh")  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert not summary["ok"] and len(summary["failures"]) == 3
    # Failures name the seeds they were for (--seed 21: one candidate per prompt, one seed each).
    assert summary["failures"][0].startswith("prompts.json[2] seed 21: ")
    assert summary["failures"][1].startswith("prompts.json[3] seed 21: ")
    assert "FAILED prompts.json[2] seed 21: " in result.stdout
    assert "duration_s" in summary["failures"][1]  # caught before sending
    # A candidate count outside the limits fails that prompt alone, naming the field.
    assert summary["failures"][2].startswith("prompts.json[4] seed 21: candidates: ")
    assert summary["items"][3]["seeds"] == [] and summary["items"][3]["code"] == "invalid_argument"
    assert [i["error"] == "" for i in summary["items"]] == [True, False, False, False]


def test_batch_usage_errors_exit_2(tmp_path: Path) -> None:
    missing = run_batch("--prompts", str(tmp_path / "none.txt"), "--out", str(tmp_path))
    assert missing.returncode == 2 and "cannot read the prompt file" in missing.stderr
    prompts = tmp_path / "p.txt"
    prompts.write_text("walk\n")
    bad = run_batch("--prompts", str(prompts), "--out", str(tmp_path), "--formats", "obj")
    assert bad.returncode == 2 and "--formats" in bad.stderr
    remote = run_batch("--prompts", str(prompts), "--out", str(tmp_path),
                       "--address", "tcp://10.9.9.9:7878")  # fmt: skip
    assert remote.returncode == 2 and "needs CURVE keys" in remote.stderr
    malformed = run_batch("--prompts", str(prompts), "--out", str(tmp_path), "--address", "foo")
    assert malformed.returncode == 2 and "'foo' is not a daemon address" in malformed.stderr
    assert "--address" in malformed.stderr  # the batch's own fix, not only the preferences'
    # An artist name the daemon would refuse: named at once, not "no daemon answered" later.
    artist = run_batch("--prompts", str(prompts), "--out", str(tmp_path), "--artist", "bad name!")
    assert artist.returncode == 2, artist.stdout + artist.stderr
    assert "the artist name 'bad name!' is not usable" in artist.stderr
    jobs = tmp_path / "jobs.json"
    jobs.write_text('["walk", 3]')  # as docs/addon.md lists: an entry of neither form
    entry = run_batch("--prompts", str(jobs), "--out", str(tmp_path))
    assert entry.returncode == 2
    assert "jobs.json[2]: expected a string or an object with a 'prompt'" in entry.stderr


def test_batch_daemon_down_fails_every_item_quickly(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
    prompts = tmp_path / "p.txt"
    prompts.write_text("walk\nrun\n")
    result = run_batch("--prompts", str(prompts), "--out", str(tmp_path / "o"),
                       "--address", address, "--connect-timeout", "0.5")  # fmt: skip
    assert result.returncode == 1
    assert result.stdout.count("no HY-Motion daemon answered") >= 2
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["ok"] is False
    assert summary["daemon"] == {"version": "", "model": "", "model_label": "", "device": "",
                                 "untrained": False, "queue_depth": None}  # fmt: skip


def test_a_job_timeout_fails_that_item_only(tmp_path: Path, start_daemon: StartDaemon) -> None:
    slow = start_daemon(step_s=0.05)
    prompts = tmp_path / "p.txt"
    prompts.write_text("a long one | steps=200\na short one | steps=4\n")
    result = run_batch("--prompts", str(prompts), "--out", str(tmp_path / "o"),
                       "--address", slow.address, "--duration", "1", "--candidates", "1",
                       "--formats", "bvh", "--timeout", "2")  # fmt: skip
    cancelled = [e for e in slow.log_events() if e["event"] == "job_finished"]
    assert result.returncode == 1, result.stdout + result.stderr
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert [i["error"] == "" for i in summary["items"]] == [False, True]
    assert summary["items"][0]["code"] == "job_timeout"
    assert "no result within 2 s" in summary["failures"][0] and "--timeout" in result.stdout
    assert [e["outcome"] for e in cancelled] == ["cancelled", "ok"]  # not left running


def test_bvh_mode_keeps_an_earlier_summary(tmp_path: Path) -> None:
    clip = ROOT / "examples" / "mocap" / "walk_forward_cmu_35_01.bvh"
    relative_out = os.path.relpath(tmp_path / "o", ROOT)  # the batch runs in ROOT
    args = ["--bvh", str(clip), "--out", relative_out, "--formats", "blend"]
    first = run_batch(*args)
    assert first.returncode == 0, first.stdout + first.stderr
    blend = tmp_path / "o" / "001_walk_forward_cmu_35_01" / "001_walk_forward_cmu_35_01.blend"
    assert blend.is_file()
    # as in a prompt batch: absolute paths in summary.json and in the `wrote` lines
    (item,) = json.loads((tmp_path / "o" / "summary.json").read_text())["items"]
    assert item["files"] == [str(blend.resolve())]
    assert f"wrote {blend.resolve()}" in first.stdout
    summary = (tmp_path / "o" / "summary.json").read_bytes()
    again = run_batch(*args)
    assert again.returncode == 2 and "--overwrite" in again.stderr
    assert (tmp_path / "o" / "summary.json").read_bytes() == summary
    # Without the summary, an existing .blend fails that file alone, and says which flag.
    (tmp_path / "o" / "summary.json").unlink()
    third = run_batch(*args)
    assert third.returncode == 1, third.stdout + third.stderr
    (item,) = json.loads((tmp_path / "o" / "summary.json").read_text())["items"]
    assert item["code"] == "file_exists" and "--overwrite" in item["error"], item


def test_a_summary_that_cannot_be_written_fails_the_batch(tmp_path: Path) -> None:
    clip = ROOT / "examples" / "mocap" / "walk_forward_cmu_35_01.bvh"
    (tmp_path / "o" / "summary.json").mkdir(parents=True)  # replaceable by no file
    result = run_batch("--bvh", str(clip), "--out", str(tmp_path / "o"), "--formats", "bvh",
                       "--overwrite")  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert "error: could not write" in result.stderr and "Traceback" not in result.stderr
    assert "done: 1 item(s) succeeded, 0 failed" in result.stdout


@pytest.mark.parametrize(
    ("flag", "value", "says"),
    [("--fps", "0", "frames per second above 0"), ("--fps", "-5", "frames per second above 0"),
     ("--fps", "nan", "frames per second above 0"), ("--timeout", "0", "seconds above 0"),
     ("--connect-timeout", "-1", "seconds above 0"), ("--retries", "-1", "a count of 0 or more")],
)  # fmt: skip
def test_a_rate_time_or_count_out_of_range_is_a_usage_error(
    tmp_path: Path, flag: str, value: str, says: str
) -> None:
    clip = ROOT / "examples" / "mocap" / "walk_forward_cmu_35_01.bvh"
    result = run_batch("--bvh", str(clip), "--out", str(tmp_path / "o"), f"{flag}={value}")
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"error: {flag} takes {says}" in result.stderr
    assert not (tmp_path / "o").exists()  # refused before anything was written


def test_root_bone_with_a_target_rig_is_refused_not_ignored(tmp_path: Path) -> None:
    clip = ROOT / "examples" / "mocap" / "walk_forward_cmu_35_01.bvh"
    result = run_batch("--bvh", str(clip), "--out", str(tmp_path / "o"), "--root-bone",
                       "--target-rig", str(tmp_path / "hero.fbx"))  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert "with --target-rig use --root-motion root_bone" in result.stderr
    assert not (tmp_path / "o").exists()


def test_every_batch_flag_is_documented() -> None:
    """docs/addon.md, *Headless batch*, names every flag the batch takes, and no other."""
    import re

    from blender_addon.batch import parser

    flags = {o for a in parser()._actions for o in a.option_strings if o.startswith("--")}
    doc = (ROOT / "docs" / "addon.md").read_text(encoding="utf-8")
    section = doc.split("## Headless batch", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"(--[a-z][a-z-]+)", section)) - {"--python", "--python-exit-code"}
    assert sorted(flags - {"--help"} - named) == []
    assert sorted(named - flags) == []
