"""`make airflow`: Airflow 3 on http://127.0.0.1:8080 (admin/admin) with both sandboxes.

Starts the four Airflow components itself (api-server, scheduler, dag-processor, triggerer)
rather than `airflow standalone`, because SIGTERM to standalone orphans its children. Each child
runs in its own process group; Ctrl-C or SIGTERM stops the scheduler first (its executor's
workers exit with it), then the others, then the sandboxes: nothing is left running.
`--sandboxes-only` runs just the two sandboxes (`make sandboxes`).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import local

COMPONENTS = ["scheduler", "dag-processor", "triggerer", "api-server"]  # stop order = this order


def say(msg: str) -> None:
    print(msg, flush=True)


class Supervisor:
    def __init__(self) -> None:
        self.procs: dict[str, subprocess.Popen] = {}
        self.stopping = False
        self.log_dir = local.AIRFLOW_HOME / "logs" / "components"
        self.log_dir.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, argv: list[str]) -> None:
        log = open(self.log_dir / f"{name}.log", "ab")
        self.procs[name] = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def stop(self, timeout: float = 20.0) -> None:
        self.stopping = True
        for name in COMPONENTS:
            proc = self.procs.get(name)
            if proc is None or proc.poll() is not None:
                continue
            say(f"   stopping {name}")
            # the whole process group: the component and every worker it forked
            _signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait(timeout=5)
            _signal_group(proc, signal.SIGKILL)  # stragglers that ignored SIGTERM

    def dead(self) -> list[str]:
        return [n for n, p in self.procs.items() if p.poll() is not None]


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def wait_ready(url: str, timeout: float = 120.0) -> bool:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return True
        except requests.RequestException:
            pass
        time.sleep(1)
    return False


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sandboxes-only", action="store_true")
    args = ap.parse_args()

    stop_requested = False

    def request_stop(signum: int, _frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    say("-- sandboxes")
    loc = local.start_sandboxes()
    seeded = local.seed_if_empty(loc)
    if seeded:
        say(
            f"   seeded (empty sandboxes): Salesforce {seeded['salesforce']}, Lead Gen & CRM {seeded['leadgen']} leads"
        )
    say(f"   Salesforce sandbox   {loc.sf_url}   (CA: {loc.sf_ca})")
    say(f"   Lead Gen & CRM sandbox {loc.lg_url}/pubapi/v1.2/")
    sup = Supervisor()
    try:
        if not args.sandboxes_only:
            say("-- Airflow (AIRFLOW_HOME=.airflow)")
            local.ensure_airflow_home()
            local.register_connections()
            airflow = str(local.ROOT / ".venv" / "bin" / "airflow")
            for name in reversed(COMPONENTS):
                sup.start(name, [airflow, name])
            port = os.environ.get("AIRFLOW__API__PORT", "8080")
            url = f"http://127.0.0.1:{port}"
            if wait_ready(f"{url}/api/v2/monitor/health"):
                say(f"   Airflow UI: {url}  (login admin / admin); Browse -> Sync health")
            else:
                say(f"   Airflow did not answer on {url}; see {sup.log_dir}")
        say("   Ctrl-C stops everything.")
        while not stop_requested:
            dead = sup.dead()
            if dead:
                say(f"   {', '.join(dead)} exited; see {sup.log_dir}. Stopping.")
                return 1
            time.sleep(1)
        return 0
    finally:
        say("-- stopping")
        sup.stop()
        loc.stop()
        say("   stopped")


if __name__ == "__main__":
    sys.exit(main())
