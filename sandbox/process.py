"""Start a sandbox as a real child process and wait until it answers.

Used by the test fixtures, the demo and the benchmarks, so that every caller starts sandboxes
the same way a user does (``python -m sandbox.<name> --port P --data-dir D``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
HEALTH_PATH = "/__sandbox__/health"


def free_port() -> int:
    """Ask the kernel for a free TCP port on 127.0.0.1."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class SandboxProcess:
    """A running sandbox. ``base_url`` has no trailing slash."""

    module: str
    port: int
    data_dir: Path
    scheme: str
    proc: subprocess.Popen
    log_path: Path
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> Path | None:
        """The self-signed certificate clients must trust (HTTPS sandboxes only)."""
        return self.data_dir / "cert.pem" if self.scheme == "https" else None

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=timeout)

    def __enter__(self) -> SandboxProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _ready(url: str, ca_file: Path | None) -> bool:
    ctx = None
    if ca_file is not None:
        if not ca_file.exists():
            return False
        ctx = ssl.create_default_context(cafile=str(ca_file))
    try:
        with urllib.request.urlopen(url, timeout=2, context=ctx) as resp:
            return resp.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError, ssl.SSLError, OSError):
        return False


def start_sandbox(
    module: str,
    data_dir: str | os.PathLike[str],
    *,
    port: int | None = None,
    scheme: str = "http",
    extra_args: tuple[str, ...] | list[str] = (),
    env: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> SandboxProcess:
    """Start ``python -m <module> --port P --data-dir D`` and block until its health URL answers.

    The child's stdout/stderr go to ``<data_dir>/sandbox.log`` so a failing start can be read.
    """
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log_path = data_dir / "sandbox.log"
    child_env = {**os.environ, **(env or {})}
    # The child must import `sandbox` from this checkout, wherever the caller runs from.
    child_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT), child_env.get("PYTHONPATH", "")) if p
    )
    cmd = [
        sys.executable,
        "-m",
        module,
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        *extra_args,
    ]
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(
            cmd, cwd=REPO_ROOT, env=child_env, stdout=log_file, stderr=subprocess.STDOUT
        )
    handle = SandboxProcess(module, port, data_dir, scheme, proc, log_path, env or {})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"{module} exited with code {proc.returncode} during start; see {log_path}:\n"
                + log_path.read_text(errors="replace")[-4000:]
            )
        if _ready(handle.base_url + HEALTH_PATH, handle.ca_file):
            log.info("%s ready on %s (data dir %s)", module, handle.base_url, data_dir)
            return handle
        time.sleep(0.1)
    handle.stop()
    raise TimeoutError(f"{module} did not answer {HEALTH_PATH} within {timeout}s; see {log_path}")
