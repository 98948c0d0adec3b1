"""The built extension: one zip per platform and Blender Python line, each passing this
Blender's own validator; this Blender installs, enables and generates with the zip for it (its
pyzmq from the zip's wheel), and refuses the others the way docs/addon.md says."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import bpy
import pytest

from build_addon import LINES, blender_ext
from tests.addon.conftest import StartDaemon

ROOT = Path(__file__).resolve().parents[2]
PLATFORM_WHEEL_TAG = {"linux_x64": "manylinux", "windows_x64": "win_amd64",
                      "macos_arm64": "macosx", "macos_x64": "macosx"}  # fmt: skip
#: This Blender's line: Python 3.11 for 4.2-5.0, 3.13 for 5.1+.
THIS_LINE = "blender4.2-5.0" if sys.version_info[:2] == (3, 11) else "blender5.1-up"
OTHER_LINE = next(line.label for line in LINES if line.label != THIS_LINE)


@pytest.fixture(scope="module")
def zips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``{"linux_x64-blender4.2-5.0": zip, ...}``, built with this Blender's blender_ext.py."""
    out = tmp_path_factory.mktemp("dist")
    # The wheel cache is shared with `make addon`; the first build downloads from PyPI.
    result = subprocess.run(
        [sys.executable, "build_addon.py", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return {z.name.removeprefix("hy_motion-0.1.0-").removesuffix(".zip"): z for z in out.iterdir()}


def blender_like_env(user_resources: Path, **extra: str) -> dict[str, str]:
    """An environment in which the bpy module behaves like Blender towards extensions: its own
    user folder, and pyzmq only from the extension's wheels (tests/addon/blender_like)."""
    return {**os.environ, "BLENDER_USER_RESOURCES": str(user_resources),
            "PYTHONPATH": str(ROOT / "tests/addon/blender_like"), **extra}  # fmt: skip


def install(zip_path: Path, tmp_path: Path, *address: str) -> dict[str, object]:
    tmp_path.mkdir(exist_ok=True)
    env = blender_like_env(tmp_path / "blender_user")
    result = subprocess.run(
        [sys.executable, str(ROOT / "tests/addon/install_check.py"), str(zip_path), *address],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    report: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    report["output"] = result.stdout + result.stderr
    return report


@pytest.mark.slow
def test_one_zip_per_platform_and_python_line(zips: dict[str, Path]) -> None:
    assert sorted(zips) == sorted([
        "linux_x64-blender4.2-5.0", "windows_x64-blender4.2-5.0", "macos_arm64-blender4.2-5.0",
        "macos_x64-blender4.2-5.0", "linux_x64-blender5.1-up", "windows_x64-blender5.1-up",
        "macos_arm64-blender5.1-up",
    ])  # fmt: skip
    for name, path in zips.items():
        platform, line = name.split("-", 1)
        archive = zipfile.ZipFile(path)
        names = archive.namelist()
        wheels = [n for n in names if n.startswith("wheels/")]
        abi = "cp311-cp311" if line == "blender4.2-5.0" else "cp312-abi3"
        assert len(wheels) == 1 and abi in wheels[0], (name, wheels)
        assert PLATFORM_WHEEL_TAG[platform] in wheels[0] and "pyzmq-27.3.0-" in wheels[0]
        manifest = archive.read("blender_manifest.toml").decode()
        if line == "blender4.2-5.0":
            assert 'blender_version_min = "4.2.0"' in manifest
            assert 'blender_version_max = "5.1.0"' in manifest
        else:
            assert 'blender_version_min = "5.1.0"' in manifest
            assert "blender_version_max" not in manifest
        assert "_vendor/shared_protocol/client.py" in names and "core/session.py" in names
        assert not any("__pycache__" in n or "numpy" in n for n in names)


@pytest.mark.slow
def test_every_zip_passes_this_blenders_validator(zips: dict[str, Path]) -> None:
    for path in zips.values():
        result = subprocess.run([sys.executable, str(blender_ext()), "validate", str(path)],
                                capture_output=True, text=True, timeout=60)  # fmt: skip
        assert result.returncode == 0, (path.name, result.stdout + result.stderr)


@pytest.mark.slow
def test_the_zip_for_this_blender_installs_enables_and_generates(
    zips: dict[str, Path], tmp_path: Path, start_daemon: StartDaemon
) -> None:
    daemon = start_daemon()
    report = install(zips[f"linux_x64-{THIS_LINE}"], tmp_path, daemon.address)
    assert report["install"] == ["FINISHED"] and report["enabled"], report["output"]
    assert {"HYMOTION_PT_main", "HYMOTION_PT_takes", "HYMOTION_UL_takes"} <= set(report["panels"])
    assert {"generate", "cancel", "check_connection", "apply_take", "compare_takes",
            "rename_take", "delete_take", "export_takes", "generate_keys",
            "import_keys"} <= set(report["operators"])  # fmt: skip
    assert report["vendored"] == "bl_ext.user_default.hy_motion._vendor.shared_protocol.client"
    # pyzmq from the zip's wheel, as in a real Blender (blender_like hides the venv's pyzmq).
    assert "/extensions/.local/lib/python3." in str(report["zmq"]), report["zmq"]
    assert report["generate"] == ["FINISHED"] and report["takes"] == 2, report["output"]


@pytest.mark.slow
def test_zips_for_another_blender_or_platform_are_refused(
    zips: dict[str, Path], tmp_path: Path
) -> None:
    """Blender refuses them (the operator still returns FINISHED), says why on the console and
    installs nothing: what docs/addon.md tells the artist."""
    version = "This Blender version ({}.{}.{})".format(*bpy.app.version)
    why = {
        f"linux_x64-{OTHER_LINE}": (
            f"{version} must be less than the maximum version (5.1.0)"
            if OTHER_LINE == "blender4.2-5.0"
            else f"{version} doesn't meet the minimum supported version (5.1.0)"
        ),
        f"windows_x64-{THIS_LINE}": "This platform (linux-x64) isn't one of (windows-x64)",
    }
    for name, message in why.items():
        report = install(zips[name], tmp_path / name)
        assert report["install"] == ["FINISHED"] and not report["enabled"], report["output"]
        assert message in str(report["output"]), report["output"]
        assert not (tmp_path / name / "blender_user" / "extensions" / "user_default" /
                    "hy_motion").exists()  # fmt: skip


@pytest.mark.slow
def test_the_batch_runs_from_the_installed_extension(
    zips: dict[str, Path], tmp_path: Path, start_daemon: StartDaemon
) -> None:
    """docs/addon.md's ``blender -b --python-exit-code 2 --python <installed>/batch.py -- ...``,
    with the bpy module in place of the blender binary: ``python <installed>/batch.py -- ...``.
    No source tree on the path; pyzmq only from the extension's wheel."""
    daemon = start_daemon()
    assert install(zips[f"linux_x64-{THIS_LINE}"], tmp_path)["enabled"]
    user = tmp_path / "blender_user"
    installed = user / "extensions" / "user_default" / "hy_motion" / "batch.py"
    prompts, used = tmp_path / "prompts.txt", tmp_path / "used.json"
    prompts.write_text("a person walks\n")
    result = subprocess.run(
        [sys.executable, str(installed), "--", "--prompts", str(prompts), "--out", "out",
         "--address", daemon.address, "--duration", "1", "--steps", "4", "--seed", "3",
         "--candidates", "1", "--formats", "blend,bvh"],
        cwd=tmp_path, env=blender_like_env(user, HYMOTION_REPORT_FILE=str(used)),
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    folder = tmp_path / "out" / "001_a_person_walks"
    assert sorted(p.name for p in folder.iterdir()) == [
        "001_a_person_walks.blend", "a_person_walks_s3.bvh"
    ]  # fmt: skip
    modules = json.loads(used.read_text())
    assert modules["batch_modules"] == ["bl_ext.user_default.hy_motion.batch"]
    assert "/extensions/.local/lib/python3." in modules["zmq"], modules
