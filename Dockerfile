# Airflow image for docker-compose.yaml: the official image of the locked Airflow version plus
# this project's locked requirements. Keep AIRFLOW_VERSION equal to apache-airflow in
# requirements.txt (tests/unit/test_compose.py checks it).
ARG AIRFLOW_VERSION=3.3.2
FROM apache/airflow:${AIRFLOW_VERSION}-python3.11
COPY --chown=airflow:root requirements.txt /tmp/requirements.txt
# psycopg2 for the Postgres metadata DB and sync state comes with the official image.
RUN pip install --no-cache-dir -r /tmp/requirements.txt
