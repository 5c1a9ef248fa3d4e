#!/usr/bin/env bash
# Create the project's virtual environment with Python 3.11+, installing Debian's venv support
# first when the interpreter lacks it (a fresh Debian has python3 but not always python3-venv).
set -euo pipefail
python=${1:-python3}
venv=${2:-.venv}
"$python" - <<'PY' || { echo "hvpatch needs Python 3.11 or newer (found: $("$python" --version 2>&1))" >&2; exit 1; }
import sys
sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY
if ! "$python" -m venv "$venv" 2>/dev/null; then
  rm -rf "$venv"
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    ver=$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
    apt-get update -qq && apt-get install -y -qq "python${ver}-venv" || apt-get install -y -qq python3-venv
    "$python" -m venv "$venv"
  else
    echo "cannot create $venv: install your distribution's python3-venv package" >&2
    exit 1
  fi
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
