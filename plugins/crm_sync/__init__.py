"""Lead Gen & CRM <-> Salesforce sync library.

Importable by DAG files because Airflow puts ``plugins/`` on ``sys.path``; tests get the same
path from ``pyproject.toml``. Nothing here imports Airflow scheduler internals.
"""
