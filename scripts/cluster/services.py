"""The processes of a cluster: PostgreSQL and Redis (through scripts/ensure_services.sh), the two
sandboxes, the S3 server, and a supervisor for the Airflow processes.

Every process is started here and stopped here by its own pid (or pid file): a supervised process
runs in its own process group so that SIGTERM reaches what it forked (Celery's pool, the task
supervisors), and a group that ignores SIGTERM gets SIGKILL after a grace period.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from scripts.cluster.settings import ROOT, S3_BUCKET, Ports

ENSURE = ROOT / "scripts" / "ensure_services.sh"


def say(msg: str) -> None:
    print(msg, flush=True)


@dataclass
class Supervised:
    name: str
    proc: subprocess.Popen
    log_path: Path
    log: IO[bytes]


@dataclass
class Supervisor:
    """Starts named processes (stdout+stderr to ``log_dir/<name>.log``) and stops them in reverse
    order of start, each with its whole process group."""

    log_dir: Path
    procs: list[Supervised] = field(default_factory=list)

    def start(self, name: str, argv: list[str], *, env: dict[str, str], cwd: Path) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        cwd.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        log = open(log_path, "ab")  # closed in stop()
        proc = subprocess.Popen(
            argv, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.procs.append(Supervised(name, proc, log_path, log))

    def dead(self) -> list[str]:
        return [p.name for p in self.procs if p.proc.poll() is not None]

    def log_of(self, name: str) -> str:
        for p in self.procs:
            if p.name == name:
                return p.log_path.read_text(errors="replace")
        raise KeyError(name)

    def stop(self, timeout: float = 30.0) -> None:
        for p in reversed(self.procs):
            if p.proc.poll() is None:
                _signal_group(p.proc, signal.SIGTERM)
                try:
                    p.proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    say(f"   {p.name} did not stop within {timeout:.0f} s: killed")
            # Stragglers of the group (a task process that ignored SIGTERM) go too.
            _signal_group(p.proc, signal.SIGKILL)
            if p.proc.poll() is None:
                p.proc.wait(timeout=10)
            p.log.close()
        self.procs.clear()


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def ensure_services(*args: str) -> None:
    """Run scripts/ensure_services.sh (install when missing; start/stop a server)."""
    subprocess.run(["bash", str(ENSURE), *args], check=True)


@dataclass
class Databases:
    """The private PostgreSQL (metadata DB ``airflow`` + state DB ``sync_state``) and Redis."""

    root: Path
    ports: Ports
    started: list[str] = field(default_factory=list)

    def start(self) -> None:
        pg, redis = self.root / "postgres", self.root / "redis"
        ensure_services(
            "postgres", "start", str(pg), str(self.ports.postgres), "airflow", "sync_state"
        )
        self.started.append("postgres")
        ensure_services("redis", "start", str(redis), str(self.ports.redis))
        self.started.append("redis")

    def stop(self) -> None:
        for name in reversed(self.started):
            ensure_services(name, "stop", str(self.root / name))
        self.started.clear()


@dataclass
class ObjectStore:
    """A local S3-compatible server (moto) with the run-storage bucket, on a loopback port."""

    root: Path
    port: int
    proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        import requests

        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "moto.log", "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the S3 server exited; see {self.root / 'moto.log'}")
            try:
                if requests.get(f"{self.endpoint}/moto-api/", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        else:
            self.stop()
            raise TimeoutError(f"the S3 server did not answer on {self.endpoint}")
        self.create_bucket(S3_BUCKET)

    def client(self) -> Any:
        """A boto3 client straight to the server, the protocol Airflow uses; moto accepts any
        credentials. (Checks read the bucket through it, not through the code they check.)"""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="cluster-access-key",
            aws_secret_access_key="cluster-secret-key",  # noqa: S106 - moto accepts any
        )

    def create_bucket(self, name: str) -> None:
        s3 = self.client()
        existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
        if name not in existing:
            s3.create_bucket(Bucket=name)

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every key under ``prefix`` in ``bucket``, sorted."""
        pages = (
            self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        )
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            _signal_group(self.proc, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                _signal_group(self.proc, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.proc = None
