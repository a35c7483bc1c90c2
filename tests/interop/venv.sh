#!/usr/bin/env bash
# Installs the Python clients of requirements.txt into a virtual environment outside the clone
# (MESHLINE_VENV, default ~/.cache/meshline-venv), once per change of requirements.txt, and
# prints the path of its python. Concurrent callers wait for one another.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${MESHLINE_VENV:-$HOME/.cache/meshline-venv}"
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
stamp="$venv/.requirements"
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$here/requirements.txt" "$stamp"; then
  echo "== installing the interop tests' Python clients into $venv" >&2
  python3 -m venv "$venv" >&2 || {
    echo "cannot create a Python virtual environment: install Python 3 with its venv module" >&2
    exit 1
  }
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r "$here/requirements.txt" >&2 || {
    echo "cannot install $here/requirements.txt from the Python package index" >&2
    exit 1
  }
  cp "$here/requirements.txt" "$stamp"
fi
echo "$venv/bin/python"
