#!/usr/bin/env bash
# mypy on blender_addon and build_addon.py against fake-bpy-module stubs for Blender 4.2, 4.5
# and 5.0. Usage: tests/addon/run_mypy.sh [VERSION ...]   (also run by test_addon_mypy.py)
#
# The stub packages all provide `bpy`, so each version gets its own tiny venv
# (build/mypy-venv/<version>, created on first use: one pip download of the stubs) holding only
# the stubs, with a .pth file pointing at the project venv for numpy and pyzmq (its own
# site-packages comes first, so its bpy stubs win).
# build.IS_SLOTTED (Blender >= 4.4) picks the legacy or the slotted-action API; mypy treats it
# as a constant so that each branch is checked against the stubs of the versions it runs on.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
STUBS_RELEASE=20260730  # fake-bpy-module release (one date for every Blender version)
versions=("${@:-4.2 4.5 5.0}")
project_site=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
status=0
for version in ${versions[@]}; do
    venv="build/mypy-venv/$version"
    if [ "$(cat "$venv/.installed" 2>/dev/null)" != "$STUBS_RELEASE" ]; then
        rm -rf "$venv"
        "$PY" -m venv --without-pip "$venv"
        site=$("$venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
        "$PY" -m pip install --quiet --no-deps --target "$site" \
            "fake-bpy-module-$version==$STUBS_RELEASE"
        echo "$project_site" > "$site/project.pth"
        echo "$STUBS_RELEASE" > "$venv/.installed"
    fi
    case "$version" in
        4.[0-3]) slotted=--always-false ;;
        *) slotted=--always-true ;;
    esac
    echo "== mypy, fake-bpy-module-$version"
    if ! "$PY" -m mypy --python-executable "$venv/bin/python" \
        --cache-dir "build/mypy-cache/$version" "$slotted" IS_SLOTTED \
        blender_addon build_addon.py; then
        status=1
    fi
done
exit $status
