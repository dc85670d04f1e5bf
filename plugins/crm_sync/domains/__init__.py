"""Domain rules of each sync DAG that are not shared by the spine (one module per domain)."""
