"""Sync health pages for the Airflow UI: a FastAPI app over the sync state store.

``app.py`` holds the routes (HTML pages under ``/ui``, JSON under ``/api``), ``queries.py`` the
read-only SQL, ``present.py`` the redaction and shaping of rows for output, ``source.py`` how the
api-server finds and opens the state store. ``plugins/sync_health_plugin.py`` mounts the app in
the Airflow api-server under ``/crm-sync``.
"""
