#!/usr/bin/env bash
# mypy on blender_addon and build_addon.py against fake-bpy-module stubs for Blender 4.2, 4.5,
# 5.0, 5.2 and "latest" (Blender's main branch, fake-bpy-module-latest).
# Usage: tests/addon/run_mypy.sh [VERSION ...]   (also run by test_addon_mypy.py)
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
STUBS_RELEASE=20260730  # fake-bpy-module-<version> release (one date for every version)
LATEST_RELEASE=20261026  # fake-bpy-module-latest: a dated build of Blender's main branch
versions=("${@:-4.2 4.5 5.0 5.2 latest}")
project_site=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
status=0
for version in ${versions[@]}; do
    venv="build/mypy-venv/$version"
    release=$STUBS_RELEASE
    [ "$version" = latest ] && release=$LATEST_RELEASE
    if [ "$(cat "$venv/.installed" 2>/dev/null)" != "$release" ]; then
        rm -rf "$venv"
        "$PY" -m venv --without-pip "$venv"
        site=$("$venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
        "$PY" -m pip install --quiet --no-deps --target "$site" \
            "fake-bpy-module-$version==$release"
        echo "$project_site" > "$site/project.pth"
        echo "$release" > "$venv/.installed"
    fi
    case "$version" in
        4.[0-3]) slotted=--always-false ;;
        *) slotted=--always-true ;;
    esac
    # fake-bpy-module-5.2 (20260730) alone declares every callback argument optional
    # (execute(context: Context | None)); Blender always passes them, and the 4.x, 5.0 and
    # latest stubs agree. So for 5.2 only, overrides are not compared with those signatures.
    extra=()
    [ "$version" = 5.2 ] && extra=(--disable-error-code override)
    echo "== mypy, fake-bpy-module-$version"
    if ! "$PY" -m mypy --python-executable "$venv/bin/python" \
        --cache-dir "build/mypy-cache/$version" "$slotted" IS_SLOTTED "${extra[@]}" \
        blender_addon build_addon.py; then
        status=1
    fi
done
exit $status
