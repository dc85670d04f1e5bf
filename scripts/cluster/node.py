"""The host name an Airflow process reports (``[core] hostname_callable`` of the cluster's workers).

On a real cluster every worker is its own machine, with its own address, and the api-server
fetches a task's log from ``http://<task instance hostname>:<worker_log_server_port>/log/``. On one
machine the two workers get their own loopback addresses (127.0.0.2, 127.0.0.3) and each serves its
logs there, on the same port: this function makes each worker report the address it serves on.
"""

from __future__ import annotations

import os
import socket


def hostname() -> str:
    """``CRM_SYNC_NODE_ADDRESS`` when set (the cluster sets it per worker), else the FQDN."""
    return os.environ.get("CRM_SYNC_NODE_ADDRESS") or socket.getfqdn()
