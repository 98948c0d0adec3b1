#!/usr/bin/env bash
# mypy on blender_addon against fake-bpy-module stubs for Blender 4.2, 4.5 and 5.0.
# The stub packages all provide `bpy`, so each version gets its own tiny venv
# (build/mypy-venv/<version>, created on first use) holding only the stubs, with a .pth file
# pointing at the project venv for numpy and pyzmq (its own site-packages comes first, so its
# bpy stubs win). union-attr and override are off: the stubs make every context member
# Optional and type operator results as Literal sets, which is noise, not API drift. Usage: tests/addon/run_mypy.sh [VERSION ...]
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
versions=("${@:-4.2 4.5 5.0}")
project_site=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
status=0
for version in ${versions[@]}; do
    venv="build/mypy-venv/$version"
    if [ ! -f "$venv/.installed" ]; then
        rm -rf "$venv"
        "$PY" -m venv --without-pip "$venv"
        site=$("$venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
        "$PY" -m pip install --quiet --no-deps --target "$site" "fake-bpy-module-$version"
        echo "$project_site" > "$site/project.pth"
        touch "$venv/.installed"
    fi
    echo "== mypy, fake-bpy-module-$version"
    if ! "$PY" -m mypy --python-executable "$venv/bin/python" \
        --cache-dir "build/mypy-cache/$version" \
        --disable-error-code union-attr --disable-error-code override \
        blender_addon build_addon.py; then
        status=1
    fi
done
exit $status
