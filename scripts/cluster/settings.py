"""Where everything of `make cluster` lives, which ports it uses, and every process's environment.

The environment of each Airflow process is three layers:

1. ``deploy/airflow.env``: settings every deployment shares (docker-compose.yaml reads it too);
2. :data:`DEPLOYMENT_KEYS`: what each deployment sets for itself (hosts, paths, secrets) — the
   same keys as the ``environment:`` block of docker-compose.yaml, computed here for this machine;
3. :data:`LOCAL_ONLY`: what only a one-machine cluster needs (free ports, one home per process).

``tests/unit/test_compose.py`` checks that compose and this module agree on all three.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENV_FILE = ROOT / "deploy" / "airflow.env"
VENV_BIN = ROOT / ".venv" / "bin"

# =================================================================================================
# RUN STORAGE: where the stages of a DAG run hand each other files (crm_sync reads it from
# CRM_SYNC_RUN_STORAGE). "s3": the local S3 server (moto) through the Airflow connection
# `crm_sync_runs`, and each process keeps a private CRM_SYNC_HOME: the workers share no folder for
# run files, as on separate machines. "shared" (one folder every process sees, .cluster/shared)
# is kept to compare: `make cluster CLUSTER_ARGS="--run-storage shared"`.
RUN_STORAGE = "s3"
# =================================================================================================
RUN_STORAGE_CHOICES = ("shared", "s3")
S3_BUCKET = "crm-sync-runs"
S3_CONN_ID = "crm_sync_runs"

# Set by every deployment for itself; docker-compose.yaml's x-airflow-common environment has
# exactly these keys.
DEPLOYMENT_KEYS = (
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__CELERY__BROKER_URL",
    "AIRFLOW__CELERY__RESULT_BACKEND",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
    "AIRFLOW__CORE__DAGS_FOLDER",
    "AIRFLOW__CORE__PLUGINS_FOLDER",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__API__SECRET_KEY",
    "AIRFLOW_CONN_SYNC_STATE",
    "AIRFLOW_CONN_SALESFORCE_DEFAULT",
    "AIRFLOW_CONN_LEADGEN_DEFAULT",
    "AIRFLOW_CONN_CRM_SYNC_RUNS",
    "REQUESTS_CA_BUNDLE",
    "CRM_SYNC_HOME",
    "CRM_SYNC_RUN_STORAGE",
    "CRM_SYNC_BACKUP_DIR",
    "PYTHONPATH",
)

# Only a cluster on one machine sets these, and why.
LOCAL_ONLY = {
    "AIRFLOW_HOME": "each process has its own folder, as each container has its own filesystem",
    "AIRFLOW__API__HOST": "the api-server listens on loopback only",
    "AIRFLOW__API__PORT": "a free port instead of a container's 8080",
    "AIRFLOW__API__BASE_URL": "follows the port (task processes call the execution API there)",
    "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": "a free port (8793 may be taken on this machine)",
    "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": "a free port (8794 may be taken on this machine)",
    "AIRFLOW__CORE__HOSTNAME_CALLABLE": "each worker reports its own loopback address",
    "CRM_SYNC_NODE_ADDRESS": "that address (127.0.0.2, 127.0.0.3, ...)",
}

# Variables of the caller's shell that must not leak into the cluster's processes.
_FOREIGN_PREFIXES = ("AIRFLOW", "CRM_SYNC_", "SANDBOX_", "SF_SANDBOX", "LG_SANDBOX")
_FOREIGN_KEYS = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "PYTHONPATH", "PROJECT_ROOT")


def read_env_file(path: Path | None = None) -> dict[str, str]:
    """``KEY=value`` lines of an env file (default: deploy/airflow.env; blank lines and ``#``
    comments skipped), in order."""
    path = path or ENV_FILE
    out: dict[str, str] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key or " " in key:
            raise ValueError(f"{path.name}:{n}: not KEY=value: {line!r}")
        out[key] = value
    return out


def free_port(host: str = "127.0.0.1") -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _port_free_everywhere(port: int, hosts: tuple[str, ...]) -> bool:
    for host in hosts:
        with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
            try:
                s.bind((host, port))
            except OSError:
                return False
    return True


@dataclass(frozen=True)
class Ports:
    """Free loopback ports for one cluster (nothing listens on a fixed port)."""

    postgres: int
    redis: int
    api: int
    worker_logs: int  # the same port on each worker's own address, as on separate machines
    trigger_logs: int
    s3: int

    @classmethod
    def allocate(cls, workers: int) -> Ports:
        hosts = ("0.0.0.0", *(node_address(n) for n in range(1, workers + 1)))
        worker_logs = free_port("0.0.0.0")
        while not _port_free_everywhere(worker_logs, hosts):
            worker_logs = free_port("0.0.0.0")
        return cls(
            postgres=free_port(),
            redis=free_port(),
            api=free_port(),
            worker_logs=worker_logs,
            trigger_logs=free_port("0.0.0.0"),
            s3=free_port(),
        )


def node_address(n: int) -> str:
    """Loopback address of worker ``n`` (1-based): 127.0.0.2, 127.0.0.3, ..."""
    return f"127.0.0.{n + 1}"


@dataclass(frozen=True)
class Layout:
    """Folders of one cluster under ``root`` (``.cluster/`` for `make cluster`).

    control/home         AIRFLOW_HOME of api-server, scheduler, dag-processor, triggerer
    worker-N/            working directory of worker N; worker-N/home its AIRFLOW_HOME (logs),
                         worker-N/crm_sync its CRM_SYNC_HOME (scratch files, preflight record)
    shared/crm_sync      the run folder every worker sees (RUN_STORAGE "shared" only)
    backups/             the backup archive (CRM_SYNC_BACKUP_DIR): storage every worker sees
    postgres/, redis/, s3/, sandbox/   the services' data
    logs/                stdout/stderr of every process
    """

    root: Path
    workers: int = 2

    @property
    def control_home(self) -> Path:
        return self.root / "control" / "home"

    def worker_dir(self, n: int) -> Path:
        return self.root / f"worker-{n}"

    def worker_home(self, n: int) -> Path:
        return self.worker_dir(n) / "home"

    @property
    def shared_sync_home(self) -> Path:
        return self.root / "shared" / "crm_sync"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def backups(self) -> Path:
        """Backups must be found by the task that writes, whichever worker took them
        (docs/backup.md): the one folder the processes share, and never for run files."""
        return self.root / "backups"

    def sync_home(self, run_storage: str, worker: int | None) -> Path:
        """CRM_SYNC_HOME of a process: shared by all while run files live in a folder."""
        if run_storage == "shared":
            return self.shared_sync_home
        if worker is None:
            return self.root / "control" / "crm_sync"
        return self.worker_dir(worker) / "crm_sync"


@dataclass(frozen=True)
class Endpoints:
    """What the cluster's processes connect to (filled in once the services run)."""

    sf_port: int
    lg_port: int
    sf_ca_bundle: Path
    lg_app_base_url: str


@dataclass(frozen=True)
class Secrets:
    """Shared by every process of one cluster, new for each start, never written to the repo."""

    jwt: str
    api: str

    @classmethod
    def generate(cls) -> Secrets:
        return cls(jwt=secrets.token_urlsafe(32), api=secrets.token_urlsafe(32))


def s3_connection(port: int) -> dict[str, object]:
    """Airflow connection (type ``aws``, the amazon provider's) to the local S3 server: the
    provider's s3 filesystem for ObjectStoragePath reads ``endpoint_url`` from its extra."""
    return {
        "conn_type": "aws",
        "login": "cluster-access-key",
        "password": "cluster-secret-key",
        "extra": {"endpoint_url": f"http://127.0.0.1:{port}", "region_name": "us-east-1"},
    }


def connections(ports: Ports, ep: Endpoints) -> dict[str, str]:
    """The Airflow connections, as AIRFLOW_CONN_* values (same shapes as docker-compose.yaml)."""
    pg = f"airflow:airflow@127.0.0.1:{ports.postgres}"
    sf = {
        "conn_type": "salesforce",
        "login": "integration@sandbox.example",
        "password": "sandbox-password",
        "extra": {"security_token": "SANDBOXTOKEN", "domain": f"127.0.0.1:{ep.sf_port}#"},
    }
    lg = {
        "conn_type": "leadgen",
        "host": f"http://127.0.0.1:{ep.lg_port}/pubapi/v1.2/",
        "login": "SANDBOXACCOUNT",
        "password": "SANDBOXSECRET",
        "extra": {"app_base_url": ep.lg_app_base_url},
    }
    return {
        "AIRFLOW_CONN_SYNC_STATE": f"postgresql://{pg}/sync_state",
        "AIRFLOW_CONN_SALESFORCE_DEFAULT": json.dumps(sf),
        "AIRFLOW_CONN_LEADGEN_DEFAULT": json.dumps(lg),
        "AIRFLOW_CONN_CRM_SYNC_RUNS": json.dumps(s3_connection(ports.s3)),
    }


def run_storage_url(layout: Layout, run_storage: str) -> str:
    if run_storage == "s3":
        return f"s3://{S3_CONN_ID}@{S3_BUCKET}/runs"
    return (layout.shared_sync_home / "runs").as_uri()


@dataclass(frozen=True)
class Topology:
    """Everything that decides the environment of a cluster's processes."""

    layout: Layout
    ports: Ports
    endpoints: Endpoints
    secrets: Secrets
    run_storage: str = RUN_STORAGE


def deployment_env(topo: Topology, worker: int | None = None) -> dict[str, str]:
    """The :data:`DEPLOYMENT_KEYS` for one process of this cluster."""
    layout, ports, ep, sec = topo.layout, topo.ports, topo.endpoints, topo.secrets
    pg = f"airflow:airflow@127.0.0.1:{ports.postgres}"
    env = {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{pg}/airflow",
        "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{ports.redis}/0",
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql+psycopg2://{pg}/airflow",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{ports.api}/execution/",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(layout.root / "passwords.json"),
        "AIRFLOW__API_AUTH__JWT_SECRET": sec.jwt,
        "AIRFLOW__API__SECRET_KEY": sec.api,
        **connections(ports, ep),
        "REQUESTS_CA_BUNDLE": str(ep.sf_ca_bundle),
        "CRM_SYNC_HOME": str(layout.sync_home(topo.run_storage, worker)),
        "CRM_SYNC_RUN_STORAGE": run_storage_url(layout, topo.run_storage),
        "CRM_SYNC_BACKUP_DIR": str(layout.backups),
        "PYTHONPATH": str(ROOT),
    }
    assert tuple(env) == DEPLOYMENT_KEYS, "keep DEPLOYMENT_KEYS and deployment_env in step"
    return env


def local_env(layout: Layout, ports: Ports, worker: int | None = None) -> dict[str, str]:
    """The :data:`LOCAL_ONLY` settings of one process (workers get their own address)."""
    env = {
        "AIRFLOW_HOME": str(layout.control_home if worker is None else layout.worker_home(worker)),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(ports.api),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{ports.api}",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(ports.worker_logs),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(ports.trigger_logs),
    }
    if worker is not None:
        env["AIRFLOW__CORE__HOSTNAME_CALLABLE"] = "scripts.cluster.node.hostname"
        env["CRM_SYNC_NODE_ADDRESS"] = node_address(worker)
    assert set(env) <= set(LOCAL_ONLY)
    return env


def base_env() -> dict[str, str]:
    """The caller's environment without anything that configures Airflow, the sync or sandboxes."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(_FOREIGN_PREFIXES) and k not in _FOREIGN_KEYS
    }
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def process_env(topo: Topology, worker: int | None = None) -> dict[str, str]:
    """Full environment of one Airflow process of the cluster (``worker`` None: control plane)."""
    shared = read_env_file()
    deployment = deployment_env(topo, worker)
    local = local_env(topo.layout, topo.ports, worker)
    clash = (set(shared) & set(deployment)) | (set(shared) & set(local))
    if clash:
        raise ValueError(f"{ENV_FILE.name} must not hold per-deployment keys: {sorted(clash)}")
    return {**base_env(), **shared, **deployment, **local}
