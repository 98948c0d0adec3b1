"""Build the installable Blender extension zips (one per platform).

    python build_addon.py [--out dist] [--wheel-cache build/wheels] [--offline]

Steps: stage ``blender_addon/`` with ``shared_protocol`` vendored as ``_vendor/shared_protocol``
(the add-on imports it from there when installed); download the pyzmq wheels for Blender's
Pythons (cp311 for Blender 4.2-5.0, cp312-abi3 for 5.1+ / Python 3.13) per platform into a cache
with ``pip download``; list them in the staged manifest; validate and build with the
``blender_ext.py`` that ships inside every Blender and bpy wheel (``--split-platforms``, so
each zip carries only its own platform's wheels). Wheels are never committed.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent
ADDON = ROOT / "blender_addon"
PYZMQ = "pyzmq==27.3.0"
#: (Blender platform, pip --platform tags in preference order). macOS wheels are universal2.
PLATFORMS = {
    "linux-x64": ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"],
    "windows-x64": ["win_amd64"],
    "macos-arm64": ["macosx_11_0_arm64", "macosx_10_15_universal2"],
    "macos-x64": ["macosx_10_15_x86_64", "macosx_10_15_universal2"],
}
PYTHONS = ("3.11", "3.13")  # Blender 4.2-5.0 and 5.1+
_STAGE_EXCLUDE = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache", ".ruff_cache")


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


def download_wheels(cache: Path, offline: bool) -> list[Path]:
    """pyzmq wheels for every platform and Python, from the cache or PyPI."""
    cache.mkdir(parents=True, exist_ok=True)
    wheels: set[Path] = set()
    for platform, tags in PLATFORMS.items():
        for python in PYTHONS:
            wheels.add(_one_wheel(cache, platform, tags, python, offline))
    return sorted(wheels)


def _one_wheel(cache: Path, platform: str, tags: list[str], python: str, offline: bool) -> Path:
    for tag in tags:
        cached = _matching(cache, tag, python)
        if cached is not None:
            return cached
    if offline:
        raise BuildError(f"no cached pyzmq wheel for {platform} / Python {python} in {cache}")
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
               "--only-binary=:all:", "--python-version", python, "--dest", str(cache)]  # fmt: skip
    command += [arg for tag in tags for arg in ("--platform", tag)] + [PYZMQ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    found = next((w for tag in tags if (w := _matching(cache, tag, python))), None)
    if result.returncode != 0 or found is None:
        raise BuildError(
            f"pip could not download {PYZMQ} for {platform} / Python {python}:\n{result.stderr}"
        )
    return found


def _matching(cache: Path, tag: str, python: str) -> Path | None:
    # cp311-cp311 for 3.11; the stable-ABI cp312-abi3 wheel serves 3.13.
    abi = "cp311-cp311" if python == "3.11" else "cp312-abi3"
    version = PYZMQ.split("==")[1]
    matches = sorted(cache.glob(f"pyzmq-{version}-{abi}-*{tag}*.whl"))
    return matches[0] if matches else None


def stage(target: Path, wheels: list[Path]) -> None:
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
    listed = json.dumps([f"./wheels/{w.name}" for w in wheels])
    text, count = re.subn(r"(?m)^wheels = \[\]$", f"wheels = {listed}", manifest.read_text())
    if count != 1:
        raise BuildError("blender_manifest.toml must contain the line 'wheels = []'")
    manifest.write_text(text)


def build(out: Path, cache: Path, offline: bool = False) -> list[Path]:
    """Validate and build; returns the per-platform zips."""
    tool = blender_ext()
    wheels = download_wheels(cache, offline)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="hy_motion_build_") as temp:
        staged = Path(temp) / "hy_motion"
        stage(staged, wheels)
        for step in (["validate", str(staged)],
                     ["build", "--source-dir", str(staged), "--output-dir", str(out),
                      "--split-platforms"]):  # fmt: skip
            result = subprocess.run([sys.executable, str(tool), *step], capture_output=True,
                                    text=True, check=False)  # fmt: skip
            if result.returncode != 0:
                raise BuildError(f"blender_ext {step[0]} failed:\n{result.stdout}{result.stderr}")
    zips = sorted(out.glob("hy_motion-*-*.zip"))
    missing = [p for p in PLATFORMS if not any(p.replace("-", "_") in z.name for z in zips)]
    if missing:
        raise BuildError(f"no zip was built for {', '.join(missing)}")
    return zips


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
