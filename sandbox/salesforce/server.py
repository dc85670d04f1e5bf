"""Process entry point: parse flags, prepare TLS and the org, run uvicorn on 127.0.0.1.

``python -m sandbox.salesforce --port PORT --data-dir DIR [options]``. SIGTERM and SIGINT stop
the server gracefully (uvicorn finishes in-flight requests, then the org flushes its counters
and closes the database).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

import uvicorn

from .app import build_app
from .certs import ensure_certificate
from .faults import CALL_FAULTS, RECORD_FAULTS, FaultSettings
from .org import DEFAULT_PASSWORD, DEFAULT_TOKEN, DEFAULT_USERNAME, Org, Settings

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """uvicorn server that closes idle keep-alive connections at once on shutdown.

    uvicorn closes idle connections politely; over TLS that waits for the client's
    ``close_notify``, which an idle ``requests`` pool never sends, so SIGTERM would hang until
    the TLS shutdown timeout. Aborting idle connections keeps shutdown immediate; requests in
    flight still complete.
    """

    async def shutdown(self, sockets: list | None = None) -> None:  # type: ignore[override]
        for conn in list(self.server_state.connections):
            cycle = getattr(conn, "cycle", None)
            transport = getattr(conn, "transport", None)
            if transport is not None and (
                cycle is None or getattr(cycle, "response_complete", False)
            ):
                transport.abort()
        await super().shutdown(sockets)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m sandbox.salesforce",
        description="Local, protocol-faithful Salesforce org (HTTPS on 127.0.0.1). "
        "Use 'python -m sandbox.salesforce admin --help' for the admin CLI.",
    )
    p.add_argument("--port", type=int, required=True, help="TCP port")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="bind address (default 127.0.0.1; compose binds 0.0.0.0 inside its private network)",
    )
    p.add_argument(
        "--cert-host",
        action="append",
        default=[],
        help="extra DNS name for the certificate (repeatable), e.g. the compose service name",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        required=True,
        help="SQLite file, certificate and bulk files live here",
    )
    env = os.environ.get
    p.add_argument(
        "--username",
        default=env("SF_SANDBOX_USERNAME", DEFAULT_USERNAME),
        help="integration user (env SF_SANDBOX_USERNAME)",
    )
    p.add_argument(
        "--password",
        default=env("SF_SANDBOX_PASSWORD", DEFAULT_PASSWORD),
        help="its password (env SF_SANDBOX_PASSWORD)",
    )
    p.add_argument(
        "--security-token",
        default=env("SF_SANDBOX_TOKEN", DEFAULT_TOKEN),
        help="its security token (env SF_SANDBOX_TOKEN)",
    )
    p.add_argument(
        "--session-lifetime",
        type=float,
        default=7200.0,
        help="seconds a session stays valid without use (default 7200)",
    )
    p.add_argument(
        "--api-limit",
        type=int,
        default=100_000,
        help="daily API request allocation (default 100000)",
    )
    p.add_argument(
        "--bulk-query-job-limit",
        type=int,
        default=10_000,
        help="daily Bulk API 2.0 query jobs (default 10000)",
    )
    p.add_argument(
        "--api-version",
        default="59.0",
        help="version in the serverUrl returned by login (default 59.0)",
    )
    p.add_argument(
        "--max-cursors",
        type=int,
        default=10,
        help="open query cursors per user (default 10, as in a real org)",
    )
    p.add_argument(
        "--schema-file",
        type=Path,
        help="JSON/YAML file with extra custom fields and validation rules",
    )
    p.add_argument("--is-sandbox", action="store_true", help="report Organization.IsSandbox = true")
    p.add_argument("--latency-ms", type=float, default=0.0, help="added latency per API call")
    p.add_argument(
        "--latency-jitter-ms", type=float, default=0.0, help="random extra latency, uniform 0..N ms"
    )
    p.add_argument(
        "--fault-rate", type=float, default=0.0, help="share of API calls that fail (0..1)"
    )
    p.add_argument(
        "--fault-kinds",
        default="SERVER_UNAVAILABLE,UNABLE_TO_LOCK_ROW,DROP",
        help=f"comma list from {','.join(CALL_FAULTS)}",
    )
    p.add_argument(
        "--record-fault-rate",
        type=float,
        default=0.0,
        help="share of records in collections/bulk that fail with a transient error",
    )
    p.add_argument(
        "--record-fault-kinds",
        default="UNABLE_TO_LOCK_ROW",
        help=f"comma list from {','.join(RECORD_FAULTS)}",
    )
    p.add_argument(
        "--fault-seed", type=int, default=0, help="seed of the fault/latency random generator"
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return p


def settings_from_args(args: argparse.Namespace) -> Settings:
    from .faults import FaultInjector

    faults = FaultInjector()
    faults.configure(
        {
            "latency_ms": args.latency_ms,
            "latency_jitter_ms": args.latency_jitter_ms,
            "rate": args.fault_rate,
            "kinds": args.fault_kinds,
            "record_rate": args.record_fault_rate,
            "record_kinds": args.record_fault_kinds,
            "seed": args.fault_seed,
        }
    )
    return Settings(
        port=args.port,
        data_dir=args.data_dir.resolve(),
        username=args.username,
        password=args.password,
        security_token=args.security_token,
        session_lifetime=args.session_lifetime,
        api_limit=args.api_limit,
        bulk_query_job_limit=args.bulk_query_job_limit,
        api_version=args.api_version,
        max_cursors=args.max_cursors,
        is_sandbox=args.is_sandbox,
        schema_file=args.schema_file,
        faults=FaultSettings(**faults.settings.__dict__),
    )


def serve(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    settings = settings_from_args(args)
    cert, key = ensure_certificate(settings.data_dir, tuple(args.cert_host))
    org = Org(settings)
    log.info(
        "Salesforce sandbox on https://%s:%d (data dir %s, CA file %s)",
        args.host,
        settings.port,
        settings.data_dir,
        cert,
    )
    config = uvicorn.Config(
        build_app(org),
        host=args.host,
        port=settings.port,
        ssl_certfile=str(cert),
        ssl_keyfile=str(key),
        log_level=args.log_level,
        access_log=args.log_level == "debug",
        lifespan="on",
        # Longer than any client idles between calls, so pooled connections are not closed
        # under a client that is about to reuse them.
        timeout_keep_alive=120,
        timeout_graceful_shutdown=5,
    )
    # uvicorn re-raises the signal that stopped it once shutdown is done; exit 0 then, since a
    # SIGTERM-initiated graceful stop is the normal way to end the sandbox.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    _Server(config).run()
