#!/usr/bin/env bash
# The add-on tests on another bpy wheel (Blender 4.2 LTS, 4.5 LTS, ...), not run in CI (each
# venv is about 2 GB: bpy, torch). Usage:
#
#   tests/addon/run_other_bpy.sh 4.2.23 [pytest args]     # e.g. -q, -k scene
#   tests/addon/run_other_bpy.sh 4.5.15
#
# Creates build/bpy-venv/<VERSION> on first use (or $VENV): Python 3.11 (every bpy wheel needs
# it), bpy==VERSION with numpy<2 (bpy <= 4.4 does not pin numpy, and 4.4 fails with numpy 2),
# and the rest of requirements.lock (the daemon's dependencies for the test daemons, pytest),
# then runs `pytest tests/addon` with it. mypy is not installed there: its test skips.
set -euo pipefail
cd "$(dirname "$0")/../.."
version=${1:?usage: tests/addon/run_other_bpy.sh BPY_VERSION [pytest args]}
shift
venv=${VENV:-build/bpy-venv/$version}
PYTHON=${PYTHON:-python3.11}
if [ "$(cat "$venv/.installed" 2>/dev/null)" != "$version" ]; then
    rm -rf "$venv"
    "$PYTHON" -m venv "$venv"
    grep -v -E '^(#|bpy|ruff|mypy|fake-bpy-module)' requirements.lock > "$venv/requirements.txt"
    "$venv/bin/python" -m pip install --quiet "bpy==$version" "numpy<2" -r "$venv/requirements.txt"
    echo "$version" > "$venv/.installed"
fi
"$venv/bin/python" -c "import bpy, numpy; print('bpy', bpy.app.version_string, 'numpy', numpy.__version__)"
exec "$venv/bin/python" -m pytest tests/addon "$@"
