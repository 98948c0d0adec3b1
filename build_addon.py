"""Build the installable Blender extension zips: one per platform and Blender Python line.

    python build_addon.py [--out dist] [--wheel-cache build/wheels] [--offline]

Blender decides which Pythons an extension supports from its wheels' tags alone: a cp311 wheel
means Python 3.11, an abi3 wheel means "any Python 3", but only while no version-specific wheel
is beside it (blender_ext.py ``python_versions_from_wheels`` drops "3" when "3.11" is present).
pyzmq 27.3.0 ships cp311-cp311 wheels for Python 3.11 and cp312-abi3 wheels (no cp313 ones)
for 3.12+, so one zip holding both is refused by every Blender on Python 3.13 ("This Python
version (3.13) isn't compatible with (3.11)"). Hence one zip per Python line, each limited to
the Blenders of that line by ``blender_version_min``/``blender_version_max``:

- Blender 4.2-5.0 (Python 3.11): the cp311 wheels; linux-x64, windows-x64, macos-arm64 and
  macos-x64 (Intel Macs run 4.2 LTS and 4.5 LTS; 5.0 dropped them).
- Blender 5.1 and newer (Python 3.13): the cp312-abi3 wheels; linux-x64, windows-x64,
  macos-arm64.

Steps per line: stage ``blender_addon/`` with ``shared_protocol`` vendored as
``_vendor/shared_protocol`` (the add-on imports it from there when installed); download the
unmodified pyzmq wheels with ``pip download`` into a cache; list them and the Blender range in
the staged manifest; validate and build with the ``blender_ext.py`` that ships inside every
Blender and bpy wheel (``--split-platforms``: each zip carries only its own platform's wheels);
validate every built zip again. Wheels are never committed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent
ADDON = ROOT / "blender_addon"
PYZMQ_VERSION = "27.3.0"
#: pip ``--platform`` tags per Blender platform, in preference order (macOS wheels are universal2).
PLATFORM_TAGS = {
    "linux-x64": ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"],
    "windows-x64": ["win_amd64"],
    "macos-arm64": ["macosx_11_0_arm64", "macosx_10_15_universal2"],
    "macos-x64": ["macosx_10_15_x86_64", "macosx_10_15_universal2"],
}
_STAGE_EXCLUDE = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache", ".ruff_cache")


@dataclass(frozen=True)
class PythonLine:
    """The Blenders that share one Python version, and the zips built for them."""

    label: str  # the end of each zip's name: tells the artist which Blender it is for
    python: str  # pip --python-version
    wheel_abi: str  # the python-abi tags of the pyzmq wheel this Python takes
    blender_min: str
    blender_max: str  # first Blender version NOT supported ("" for no limit)
    platforms: tuple[str, ...]


LINES = (
    PythonLine("blender4.2-5.0", "3.11", "cp311-cp311", "4.2.0", "5.1.0",
               ("linux-x64", "windows-x64", "macos-arm64", "macos-x64")),
    PythonLine("blender5.1-up", "3.13", "cp312-abi3", "5.1.0", "",
               ("linux-x64", "windows-x64", "macos-arm64")),
)  # fmt: skip


class BuildError(Exception):
    """The extension could not be built; the message says which step failed."""


def blender_ext() -> Path:
    """The ``blender_ext.py`` CLI inside the installed bpy wheel (found without importing bpy)."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        raise BuildError("the bpy module is needed for its blender_ext.py (pip install bpy)")
    package = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(package.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    if not found:
        raise BuildError(f"blender_ext.py not found inside {package}")
    return found[-1]


def zip_name(line: PythonLine, platform: str, version: str) -> str:
    return f"hy_motion-{version}-{platform.replace('-', '_')}-{line.label}.zip"


def download_wheels(line: PythonLine, cache: Path, offline: bool) -> list[Path]:
    """The pyzmq wheels of one line for each of its platforms, from the cache or PyPI."""
    cache.mkdir(parents=True, exist_ok=True)
    return sorted({_one_wheel(cache, line, platform, offline) for platform in line.platforms})


def _one_wheel(cache: Path, line: PythonLine, platform: str, offline: bool) -> Path:
    tags = PLATFORM_TAGS[platform]
    cached = _matching(cache, line, tags)
    if cached is not None:
        return cached
    if offline:
        raise BuildError(f"no cached pyzmq wheel for {platform} / Python {line.python} in {cache}")
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
               "--only-binary=:all:", "--python-version", line.python, "--dest", str(cache),
               *[arg for tag in tags for arg in ("--platform", tag)],
               f"pyzmq=={PYZMQ_VERSION}"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    found = _matching(cache, line, tags)
    if result.returncode != 0 or found is None:
        raise BuildError(
            f"pip could not download pyzmq {PYZMQ_VERSION} ({line.wheel_abi}) for {platform}:\n"
            f"{result.stderr}"
        )
    return found


def _matching(cache: Path, line: PythonLine, tags: list[str]) -> Path | None:
    for tag in tags:
        matches = sorted(cache.glob(f"pyzmq-{PYZMQ_VERSION}-{line.wheel_abi}-*{tag}*.whl"))
        if matches:
            return matches[0]
    return None


def stage(target: Path, line: PythonLine, wheels: list[Path]) -> str:
    """Copy the add-on and its wheels to ``target``; returns the extension's version."""
    shutil.copytree(ADDON, target, ignore=_STAGE_EXCLUDE)
    vendor = target / "_vendor"
    vendor.mkdir()
    (vendor / "__init__.py").write_text(
        '"""Copies of this project\'s own packages (build_addon.py)."""\n'
    )
    shutil.copytree(ROOT / "shared_protocol", vendor / "shared_protocol", ignore=_STAGE_EXCLUDE)
    (target / "wheels").mkdir()
    for wheel in wheels:
        shutil.copy2(wheel, target / "wheels" / wheel.name)
    manifest = target / "blender_manifest.toml"
    text = manifest.read_text()
    replacements = {
        "wheels": json.dumps([f"./wheels/{w.name}" for w in wheels]),
        "platforms": json.dumps(list(line.platforms)),
        "blender_version_min": json.dumps(line.blender_min),
    }
    for key, value in replacements.items():
        text, count = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", text)
        if count != 1:
            raise BuildError(f"blender_manifest.toml must contain one line '{key} = ...'")
    if line.blender_max:
        text = text.replace(
            f"blender_version_min = {replacements['blender_version_min']}\n",
            f"blender_version_min = {replacements['blender_version_min']}\n"
            f"blender_version_max = {json.dumps(line.blender_max)}\n",
        )
    manifest.write_text(text)
    version = re.search(r'(?m)^version = "([^"]+)"$', text)
    if version is None:
        raise BuildError("blender_manifest.toml has no version line")
    return version.group(1)


def _blender_ext(tool: Path, *args: str) -> None:
    result = subprocess.run([sys.executable, str(tool), *args], capture_output=True, text=True,
                            check=False)  # fmt: skip
    if result.returncode != 0:
        raise BuildError(f"blender_ext {' '.join(args)} failed:\n{result.stdout}{result.stderr}")


def build_line(line: PythonLine, tool: Path, out: Path, cache: Path, offline: bool) -> list[Path]:
    wheels = download_wheels(line, cache, offline)
    zips = []
    with tempfile.TemporaryDirectory(prefix="hy_motion_build_") as temp:
        staged, built = Path(temp) / "hy_motion", Path(temp) / "zips"
        version = stage(staged, line, wheels)
        built.mkdir()
        _blender_ext(tool, "validate", str(staged))
        _blender_ext(tool, "build", "--source-dir", str(staged), "--output-dir", str(built),
                     "--split-platforms")  # fmt: skip
        for platform in line.platforms:
            made = built / f"hy_motion-{version}-{platform.replace('-', '_')}.zip"
            if not made.is_file():
                raise BuildError(f"blender_ext built no zip for {platform} ({line.label})")
            target = out / zip_name(line, platform, version)
            shutil.move(made, target)
            _blender_ext(tool, "validate", str(target))
            zips.append(target)
    return zips


def build(out: Path, cache: Path, offline: bool = False) -> list[Path]:
    """Validate and build every line; returns the zips, each validated after the build."""
    tool = blender_ext()
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("hy_motion-*.zip"):
        stale.unlink()
    return [z for line in LINES for z in build_line(line, tool, out, cache, offline)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="output folder")
    parser.add_argument("--wheel-cache", type=Path, default=ROOT / "build" / "wheels",
                        help="where downloaded wheels are kept between builds")  # fmt: skip
    parser.add_argument("--offline", action="store_true", help="use only cached wheels")
    args = parser.parse_args(argv)
    try:
        zips = build(args.out, args.wheel_cache, args.offline)
    except BuildError as exc:
        print(f"build_addon: {exc}", file=sys.stderr)
        return 1
    for path in zips:
        print(f"{path}  {path.stat().st_size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
