#!/usr/bin/env bash
# Create .venv (if missing) and install the locked requirements with bytecode compilation.
# Idempotent and fast when nothing changed: a stamp records the hash of requirements.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
VENV=.venv
STAMP="$VENV/.requirements.sha256"
want=$(sha256sum requirements.txt | cut -d' ' -f1)

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$VENV/bin/airflow" ]; then
  exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "bootstrap: creating $VENV with $($PYTHON --version 2>&1)"
  "$PYTHON" -m venv "$VENV"
fi
uv_version=$(grep -E '^uv==' requirements.txt | cut -d= -f3)
if [ ! -x "$VENV/bin/uv" ]; then
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$uv_version"
fi
echo "bootstrap: installing the lock (requirements.txt) into $VENV"
# --compile-bytecode: without .pyc files (PYTHONDONTWRITEBYTECODE=1 is common) the Airflow CLI
# runs up to 2x slower; see docs/architecture.md.
VIRTUAL_ENV="$PWD/$VENV" "$VENV/bin/uv" pip sync --quiet --compile-bytecode --python "$VENV/bin/python" requirements.txt
echo "$want" > "$STAMP"
echo "bootstrap: done"
