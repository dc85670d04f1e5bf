#!/usr/bin/env bash
# Create .venv (if missing), install the locked requirements with bytecode compilation, then
# install this project (pyproject.toml: the crm_sync library as the provider package
# leadgen-salesforce-sync, which registers the `leadgen` connection type) editable, without
# dependencies, so nothing is re-resolved beyond the lock.
# Idempotent and fast when nothing changed: a stamp records the hash of requirements.txt and
# pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
VENV=.venv
STAMP="$VENV/.requirements.sha256"
want=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$VENV/bin/airflow" ] \
  && compgen -G "$VENV/lib/python*/site-packages/leadgen_salesforce_sync-*.dist-info" >/dev/null; then
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
# `pip sync` removes what the lock does not list, this project included: install it again.
# Editable (a .pth pointing at plugins/), so edits are live; --no-deps: the lock has them all.
echo "bootstrap: installing this project (provider package leadgen-salesforce-sync) editable"
VIRTUAL_ENV="$PWD/$VENV" "$VENV/bin/uv" pip install --quiet --no-deps --python "$VENV/bin/python" -e .
echo "$want" > "$STAMP"
echo "bootstrap: done"
