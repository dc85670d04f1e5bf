"""`make cluster`: Airflow 3 with CeleryExecutor, Postgres and Redis, two workers, on one machine.

Modules:
  settings   folders, free ports and the environment of every process (deploy/airflow.env + this
             machine's topology); RUN_STORAGE, where run files go (the S3 server by default)
  services   PostgreSQL and Redis (scripts/ensure_services.sh), the sandboxes, the S3 server, and
             the supervisor that starts and stops the Airflow processes
  scenario   the run: seed, trigger three DAGs and a backfill through the REST API, wait, collect
  verify     data checks by direct reads of both sandboxes (fallback of `python -m crm_sync.verify`)
  node       the host name each worker reports (its own loopback address)
"""
