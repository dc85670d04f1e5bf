"""``python -m sandbox.leadgen --port PORT --data-dir DIR [--tls] [limits...]``: run the sandbox.

Serves on 127.0.0.1 by default (the admin surface has no auth). Credentials come from
``--account-id``/``--secret-key`` or, better (argv is visible to ``ps``), the environment
variables ``LEADGEN_SANDBOX_ACCOUNT_ID``/``LEADGEN_SANDBOX_SECRET_KEY``. SIGTERM/SIGINT stop
uvicorn gracefully; the database is checkpointed and closed on the way out.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from . import DEFAULT_ACCOUNT_ID, DEFAULT_SECRET_KEY
from .app import SandboxState, create_app
from .clock import AccountClock, parse_timestamp
from .config import ConfigHolder, RuntimeConfig
from .limits import FaultInjector
from .storage import Database
from .tls import ensure_certificate

log = logging.getLogger("sandbox.leadgen")


class _RedactSecret(logging.Filter):
    """Last line of defence: no log line of this process may carry the secret key."""

    def __init__(self, secret: str):
        super().__init__()
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secret:
            return True
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        if self.secret in message:
            record.msg, record.args = message.replace(self.secret, "***"), None
        return True


class _Server(uvicorn.Server):
    """uvicorn's server, minus re-raising SIGTERM after the graceful shutdown.

    uvicorn re-delivers the signal it caught once it has stopped, which kills the process
    before the database is checkpointed and closed, and makes the exit status -15. Here a
    SIGTERM/SIGINT is a normal, clean stop with exit status 0.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        previous = {
            sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m sandbox.leadgen", description=__doc__.splitlines()[0]
    )
    p.add_argument("--port", type=int, required=True)
    p.add_argument(
        "--data-dir", type=Path, required=True, help="SQLite database (and TLS files) live here"
    )
    p.add_argument(
        "--host", default="127.0.0.1", help="bind address (default 127.0.0.1; keep it local)"
    )
    p.add_argument(
        "--allow-remote-admin",
        action="store_true",
        help="let non-loopback clients use /__sandbox__/ (containers on a private network only)",
    )
    p.add_argument(
        "--tls", action="store_true", help="serve HTTPS with a self-signed cert (DIR/cert.pem)"
    )
    p.add_argument(
        "--account-id", default=os.environ.get("LEADGEN_SANDBOX_ACCOUNT_ID", DEFAULT_ACCOUNT_ID)
    )
    p.add_argument(
        "--secret-key",
        default=os.environ.get("LEADGEN_SANDBOX_SECRET_KEY", DEFAULT_SECRET_KEY),
        help="prefer the LEADGEN_SANDBOX_SECRET_KEY environment variable",
    )
    d = RuntimeConfig()
    p.add_argument(
        "--per-second-limit", type=int, default=d.per_second_limit, help="107 above this (0 = off)"
    )
    p.add_argument(
        "--daily-limit", type=int, default=d.daily_limit, help="106 above this (0 = off)"
    )
    p.add_argument(
        "--max-objects", type=int, default=d.max_objects, help="209 above this many objects"
    )
    p.add_argument("--page-cap", type=int, default=d.page_cap, help="most rows a read returns")
    p.add_argument("--latency-ms", type=float, default=0.0)
    p.add_argument("--latency-jitter-ms", type=float, default=0.0)
    p.add_argument(
        "--fault-rate", type=float, default=0.0, help="probability of a random fault per call"
    )
    p.add_argument("--fault-kinds", default="999", help="comma list of 999,drop,drop_after,500,107")
    p.add_argument("--fault-seed", type=int, default=0)
    p.add_argument(
        "--account-timezone",
        default=d.account_timezone,
        help="IANA zone the API answers and reads timestamps in (default UTC)",
    )
    p.add_argument("--log-level", default=os.environ.get("LEADGEN_SANDBOX_LOG_LEVEL", "INFO"))
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RedactSecret(args.secret_key))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=args.log_level.upper(), handlers=[handler], force=True)

    config = RuntimeConfig()
    config.update(
        {
            "per_second_limit": args.per_second_limit,
            "daily_limit": args.daily_limit,
            "max_objects": args.max_objects,
            "page_cap": args.page_cap,
            "latency_ms": args.latency_ms,
            "latency_jitter_ms": args.latency_jitter_ms,
            "fault_rate": args.fault_rate,
            "fault_kinds": [k.strip() for k in args.fault_kinds.split(",") if k.strip()],
            "fault_seed": args.fault_seed,
            "account_timezone": args.account_timezone,
        }
    )
    db = Database(args.data_dir)
    frozen = db.get_meta("clock_frozen")
    state = SandboxState(
        db=db,
        clock=AccountClock(parse_timestamp(frozen) if frozen else None),
        config=ConfigHolder(config),
        account_id=args.account_id,
        secret_key=args.secret_key,
        faults=FaultInjector(config.fault_seed),
        allow_remote_admin=args.allow_remote_admin,
    )
    ssl_kwargs = {}
    scheme = "http"
    if args.tls:
        cert, key = ensure_certificate(args.data_dir)
        ssl_kwargs = {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}
        scheme = "https"
    server = _Server(
        uvicorn.Config(
            create_app(state),
            host=args.host,
            port=args.port,
            # uvicorn's access log prints the full request line, query string (secretKey)
            # included; the app logs its own access lines without it.
            access_log=False,
            log_config=None,
            lifespan="off",
            # Idle keep-alive TLS connections only close when the peer answers close_notify;
            # do not let a client that keeps its session open hold up SIGTERM for long.
            timeout_graceful_shutdown=2,
            **ssl_kwargs,
        )
    )
    log.info(
        "Lead Gen & CRM sandbox on %s://%s:%d/pubapi/v1.2/ (account %s, data %s)",
        scheme,
        args.host,
        args.port,
        args.account_id,
        args.data_dir,
    )
    try:
        server.run()
    finally:
        db.close()
        log.info("stopped")
    return 0
