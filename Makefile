# The three commands a newcomer needs (see README.md):
#   make demo     - from nothing to a synced pair of seeded sandboxes, with a printed report
#   make test     - lint + the whole test suite (what CI runs)
#   make airflow  - Airflow 3 UI on http://127.0.0.1:8080 (admin/admin) with both sandboxes
#   make cluster  - the same DAGs on CeleryExecutor with two workers, Postgres and Redis (docs/deployment.md)
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV_PY := .venv/bin/python
ENV := . scripts/env.sh &&

.PHONY: help setup lint format test test-fast demo airflow cluster services sandboxes lock bench verify preflight backup clean

help:
	@grep -E '^[a-z-]+:.*?## ' $(MAKEFILE_LIST) | awk -F':.*?## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup: ## create .venv and install the pinned lock (idempotent)
	@scripts/bootstrap.sh

lint: setup ## ruff check + ruff format --check
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

format: setup ## apply ruff format and safe fixes
	.venv/bin/ruff check --fix .
	.venv/bin/ruff format .

test: setup lint ## lint, then every test (unit, contract, DAG integrity, end-to-end, browser)
	$(ENV) scripts/ensure_browser.sh
	$(ENV) scripts/ensure_services.sh
	$(ENV) $(VENV_PY) -m pytest $(PYTEST_ARGS)

test-fast: setup ## unit tests only
	$(ENV) $(VENV_PY) -m pytest -m unit $(PYTEST_ARGS)

demo: setup ## start seeded sandboxes, run every sync DAG twice, print what moved
	$(ENV) $(VENV_PY) scripts/demo.py $(DEMO_ARGS)

airflow: setup ## Airflow 3 standalone UI on 127.0.0.1:8080 with both sandboxes (Ctrl-C stops all)
	$(ENV) $(VENV_PY) scripts/run_airflow.py

cluster: setup services ## CeleryExecutor + Postgres + Redis + 2 workers in .cluster/: run all DAGs + a backfill, check, stop
	$(ENV) $(VENV_PY) scripts/cluster.py $(CLUSTER_ARGS)

services: ## install PostgreSQL and Redis (Debian packages) when missing
	@scripts/ensure_services.sh

sandboxes: setup ## only the two sandboxes, seeded, in the foreground (Ctrl-C stops them)
	$(ENV) $(VENV_PY) scripts/run_airflow.py --sandboxes-only

bench: setup ## run the benchmarks (prints figures; see docs/benchmarks.md)
	$(ENV) for b in bench/bench_*.py; do echo "== $$b"; $(VENV_PY) $$b || exit 1; done

verify: setup ## check the sync's invariants in both systems and the state store, read only (VERIFY_ARGS="--json --dag ...")
	$(ENV) PYTHONPATH=plugins $(VENV_PY) -m crm_sync.verify $(VERIFY_ARGS)

preflight: setup ## check org, integration user, account and specs against what the sync needs (read only; exit 1 on a fail)
	$(ENV) PYTHONPATH=plugins $(VENV_PY) -m crm_sync.preflight $(PREFLIGHT_ARGS)

backup: setup ## back up every mapped Salesforce field and the Lead Gen & CRM records (BACKUP_ARGS="--list", "--verify latest")
	$(ENV) PYTHONPATH=plugins $(VENV_PY) -m crm_sync.backup $(BACKUP_ARGS)

lock: setup ## recompile requirements.txt from requirements.in
	.venv/bin/uv pip compile requirements.in -o requirements.txt --python-version 3.11 --no-header

clean: ## remove local state (venv kept)
	rm -rf .airflow .sandbox .state .run .cluster
