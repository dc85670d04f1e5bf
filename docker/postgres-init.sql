-- A second database on the same server holds the sync state (links, quarantine, run reports).
CREATE DATABASE sync_state OWNER airflow;
