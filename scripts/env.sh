# Environment for running this project's Airflow locally. Source it: `. scripts/env.sh`.
# Everything lives inside the checkout: .venv (packages), .airflow (AIRFLOW_HOME: SQLite metadata
# DB, logs, sync state), .sandbox (sandbox data). Nothing is written outside the repo.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)"
export PROJECT_ROOT="$ROOT"
export PATH="$ROOT/.venv/bin:$PATH"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$ROOT/.airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/dags"
export AIRFLOW__CORE__PLUGINS_FOLDER="$ROOT/plugins"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-4}"
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=False
export AIRFLOW__API__HOST=127.0.0.1
export AIRFLOW__API__PORT="${AIRFLOW_PORT:-8080}"
# Task workers call the execution API at this URL; it must follow the port (see airflow3-notes).
export AIRFLOW__API__BASE_URL="http://127.0.0.1:${AIRFLOW__API__PORT}"
export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=30
# Fixed local login admin/admin (documented in the README); the password file is written by
# scripts/airflow_home.py.
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="admin:admin"
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE="$AIRFLOW_HOME/passwords.json"
export GX_ANALYTICS_ENABLED=false
export SANDBOX_DIR="${SANDBOX_DIR:-$ROOT/.sandbox}"
export SF_SANDBOX_PORT="${SF_SANDBOX_PORT:-18443}"
export LG_SANDBOX_PORT="${LG_SANDBOX_PORT:-18766}"
