"""Flows: the task bodies of each DAG, wired to the pipeline stages."""
