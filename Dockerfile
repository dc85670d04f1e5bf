# Airflow image for docker-compose.yaml: the official image of the locked Airflow version plus
# this project's locked requirements and the project itself as a provider package. Keep
# AIRFLOW_VERSION equal to apache-airflow in requirements.txt (tests/unit/test_compose.py checks it).
ARG AIRFLOW_VERSION=3.3.2
FROM apache/airflow:${AIRFLOW_VERSION}-python3.11
COPY --chown=airflow:root requirements.txt /tmp/requirements.txt
# psycopg2 for the Postgres metadata DB and sync state comes with the official image.
RUN pip install --no-cache-dir -r /tmp/requirements.txt
# The crm_sync library as the provider package leadgen-salesforce-sync (it registers the
# `leadgen` connection type). Installed editable from /opt/airflow, so its .pth points at
# /opt/airflow/plugins -- the folder docker-compose mounts: the running code is always the
# mounted checkout, the image only holds the package metadata. --no-deps: the lock has them.
COPY --chown=airflow:root pyproject.toml README.md /opt/airflow/
COPY --chown=airflow:root plugins/crm_sync /opt/airflow/plugins/crm_sync
RUN pip install --no-cache-dir --no-deps -e /opt/airflow
