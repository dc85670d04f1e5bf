"""Start and stop a whole cluster: databases, sandboxes, (S3), Airflow control plane, workers."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.process import SandboxProcess, start_sandbox
from scripts.cluster.api import AirflowApi, wait_for
from scripts.cluster.services import Databases, ObjectStore, Supervisor, ensure_services, say
from scripts.cluster.settings import (
    RUN_STORAGE,
    RUN_STORAGE_CHOICES,
    VENV_BIN,
    Endpoints,
    Layout,
    Ports,
    Secrets,
    Topology,
    node_address,
    process_env,
)

# What an init container runs once per deployment (docker-compose.yaml's airflow-init runs the
# same): open the state store of the `sync_state` connection, which applies its migrations
# (importing airflow first puts the plugins folder, where crm_sync lives, on sys.path).
MIGRATE_STATE = "import airflow; from crm_sync.runtime import open_store; open_store().dispose()"
CONTROL_PLANE = ("api-server", "scheduler", "dag-processor", "triggerer")
DAG_IDS = ("sync_leads_contacts", "sync_opportunities", "sync_engagement_activities")


@dataclass
class Cluster:
    """One cluster under ``root``; ``start()`` builds it from nothing, ``stop()`` ends every
    process it started. Use as a context manager to be sure of the second."""

    root: Path
    workers: int = 2
    run_storage: str = RUN_STORAGE
    ports: Ports = field(init=False)
    secrets: Secrets = field(default_factory=Secrets.generate)
    endpoints: Endpoints | None = None
    sandboxes: dict[str, SandboxProcess] = field(default_factory=dict)
    object_store: ObjectStore | None = None
    databases: Databases | None = None
    supervisor: Supervisor = field(init=False)
    api: AirflowApi = field(init=False)

    def __post_init__(self) -> None:
        if self.run_storage not in RUN_STORAGE_CHOICES:
            raise ValueError(f"run storage must be one of {RUN_STORAGE_CHOICES}")
        self.root = self.root.resolve()
        self.layout = Layout(self.root, self.workers)
        self.ports = Ports.allocate(self.workers)
        self.supervisor = Supervisor(self.layout.logs)
        self.api = AirflowApi(f"http://127.0.0.1:{self.ports.api}")

    # -- environment -----------------------------------------------------------------------
    def env(self, worker: int | None = None) -> dict[str, str]:
        assert self.endpoints is not None, "start the sandboxes first"
        topo = Topology(self.layout, self.ports, self.endpoints, self.secrets, self.run_storage)
        return process_env(topo, worker)

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 240.0) -> None:
        t0 = time.monotonic()
        ensure_services("install")
        self._clean()
        self.databases = Databases(self.root, self.ports)
        self.databases.start()
        say(
            f"   PostgreSQL 127.0.0.1:{self.ports.postgres} (airflow, sync_state), Redis :{self.ports.redis}"
        )
        self._start_sandboxes()
        if self.run_storage == "s3":
            self.object_store = ObjectStore(self.root / "s3", self.ports.s3)
            self.object_store.start()
            say(f"   S3 server {self.object_store.endpoint} (connection crm_sync_runs)")
        self._migrate()
        self.write_env_script()
        self._start_airflow()
        self.wait_ready(timeout - (time.monotonic() - t0))

    def _clean(self) -> None:
        """Stop what a previous cluster in this folder left running (by its pid files), then
        start from an empty folder."""
        for name in ("postgres", "redis"):
            if (self.root / name).exists():
                ensure_services(name, "stop", str(self.root / name))
        shutil.rmtree(self.root, ignore_errors=True)
        self.root.mkdir(parents=True)
        # PostgreSQL runs as the postgres user when we are root: it must reach its folder.
        self.root.chmod(0o755)
        (self.root / ".gitignore").write_text("*\n")  # nothing of a cluster is ever committed
        (self.root / "passwords.json").write_text(json.dumps({"admin": "admin"}))

    def _start_sandboxes(self) -> None:
        base = self.root / "sandbox"
        sf = start_sandbox("sandbox.salesforce", base / "salesforce", scheme="https")
        self.sandboxes["salesforce"] = sf
        lg = start_sandbox("sandbox.leadgen", base / "leadgen")
        self.sandboxes["leadgen"] = lg
        self.endpoints = Endpoints(
            sf_port=sf.port,
            lg_port=lg.port,
            sf_ca_bundle=sf.data_dir / "ca-bundle.pem",
            lg_app_base_url=f"{lg.base_url}/__sandbox__/app",
        )
        say(f"   sandboxes: Salesforce {sf.base_url}, Lead Gen & CRM {lg.base_url}")

    def _migrate(self) -> None:
        """The init step of a deployment, before any worker starts: the metadata DB, then the
        sync state DB. Tasks open the state store with ``migrate=True`` too, but two tasks that
        create the tables of an empty Postgres database at the same moment collide (seen here:
        UniqueViolation on crm_sync_alembic_version), so the schema must exist before them."""
        steps = {
            "airflow db migrate": [str(VENV_BIN / "airflow"), "db", "migrate"],
            "sync state migrations": [sys.executable, "-c", MIGRATE_STATE],
        }
        log = self.layout.logs / "init.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        for what, argv in steps.items():
            with open(log, "ab") as out:
                rc = subprocess.run(
                    argv, env=self.env(), cwd=self.root, stdout=out, stderr=subprocess.STDOUT
                ).returncode
            if rc != 0:
                raise RuntimeError(f"{what} failed; see {log}")

    def write_env_script(self) -> Path:
        """``.cluster/env.sh``: source it to use the airflow CLI against this cluster (it holds
        this cluster's generated secrets, so only its owner may read it)."""
        path = self.root / "env.sh"
        lines = [f"export {k}={shlex.quote(v)}" for k, v in self.env().items() if k != "PATH"]
        path.write_text("\n".join(["# generated by scripts/cluster.py", *lines, ""]))
        path.chmod(0o600)
        return path

    def _start_airflow(self) -> None:
        airflow = str(VENV_BIN / "airflow")
        control = self.env()
        for name in CONTROL_PLANE:
            self.supervisor.start(name, [airflow, name], env=control, cwd=self.root / "control")
        for n in range(1, self.workers + 1):
            env = self.env(worker=n)
            cwd = self.layout.worker_dir(n)
            # Each worker serves its own logs on its own address (as its own machine would);
            # the worker's built-in log server would bind every address, so it is skipped.
            self.supervisor.start(
                f"worker-{n}",
                [
                    airflow,
                    "celery",
                    "worker",
                    "--celery-hostname",
                    f"worker-{n}@cluster",
                    "--skip-serve-logs",
                ],
                env=env,
                cwd=cwd,
            )
            self.supervisor.start(
                f"worker-{n}-logs",
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "--factory",
                    "airflow.utils.serve_logs.log_server:get_app",
                    "--host",
                    node_address(n),
                    "--port",
                    str(self.ports.worker_logs),
                    "--log-level",
                    "warning",
                ],
                env=env,
                cwd=cwd,
            )

    def wait_ready(self, timeout: float) -> None:
        """api-server healthy, the three DAGs serialized, every worker connected to the broker."""
        deadline = time.monotonic() + max(timeout, 30.0)

        def left() -> float:
            return deadline - time.monotonic()

        def alive_and(check):
            def probe():
                dead = self.supervisor.dead()
                if dead:
                    raise RuntimeError(f"{', '.join(dead)} exited; see {self.layout.logs}")
                return check()

            return probe

        wait_for("the api-server", alive_and(self.api.healthy), left())
        for dag_id in DAG_IDS:
            wait_for(
                f"DAG {dag_id} to be parsed", alive_and(lambda d=dag_id: self.api.dag(d)), left(), 2
            )
        for n in range(1, self.workers + 1):
            wait_for(
                f"worker-{n} to connect",
                alive_and(lambda n=n: "ready." in self.supervisor.log_of(f"worker-{n}")),
                left(),
            )

    def stop(self) -> None:
        """Workers first (warm shutdown), then the control plane, then the services."""
        self.supervisor.stop()
        if self.object_store is not None:
            self.object_store.stop()
            self.object_store = None
        for sb in reversed(list(self.sandboxes.values())):
            sb.stop()
        self.sandboxes.clear()
        if self.databases is not None:
            self.databases.stop()
            self.databases = None
