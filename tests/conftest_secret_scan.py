"""The secret scan of a whole test session (issue 15): after the last test, no secret the suite
used may be found anywhere the suite left text.

What is searched, for every secret (and its URL-encoded form):

* every file under the session's ``AIRFLOW_HOME`` (task logs, the Airflow metadata DB, the
  default run folders and SQLite state store) and under pytest's temporary directory (each test's
  run folders and state store), except the sandboxes' own data directories, which hold the
  secrets by design (a directory with the ``sandbox.log`` every started sandbox writes);
* every XCom row of the Airflow metadata DB (named by DAG, run, task and key);
* every log record of the session (message and traceback), as it is emitted;
* every test's captured stdout, stderr and log, and every failure report;
* the HTML and JSON of every Sync health page the tests render: each ``TestClient`` response
  and each page the headless browser loads (its HTML after loading).

The secrets are the sandbox credentials the suite configures (:data:`KNOWN_SECRETS`: the Lead
Gen & CRM secret key, the Salesforce password and security token, the wrong ones the tests try)
plus every password or token of an ``AIRFLOW_CONN_*`` variable seen at the start of a test (the
``sync_state`` connection's password, if it has one).

A hit fails the session (exit status 1) with the place, the offset and the text around it; the
secret itself is never printed. ``tests/unit/test_secret_scan.py`` proves the scan can fail.
Loaded by ``tests/conftest.py``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import pytest

# The hooks tests/conftest.py takes over (star import).
__all__ = [
    "pytest_configure",
    "pytest_runtest_logreport",
    "pytest_runtest_setup",
    "pytest_sessionfinish",
]

# secret -> what it is. Distinctive strings only: a scan for "airflow" would hit everything.
KNOWN_SECRETS: dict[str, str] = {
    "SANDBOXSECRET": "Lead Gen & CRM secret key (sandbox)",
    "acme-secret-key": "Lead Gen & CRM secret key (sandbox process test)",
    "sandbox-password": "Salesforce password (sandbox)",
    "SANDBOXTOKEN": "Salesforce security token (sandbox)",
    "sandbox-consumer-secret": "Salesforce connected-app secret (sandbox)",
    "Wr0ng-S3cret-Value-42": "a wrong secret the tests try",
    "WRONG-SECRET-9876": "a wrong Lead Gen & CRM secret key the tests try",
    "NOT-THE-SECRET-123": "a wrong Lead Gen & CRM secret key the tests try",
    "not-the-password": "a wrong Salesforce password the tests try",
    "NOTTHETOKEN": "a wrong Salesforce token the tests try",
}
# Keys of a connection (or its extra) whose values are secrets.
SECRET_KEYS = ("password", "token", "secret", "private_key", "passphrase")
MIN_SECRET = 6  # shorter values are too common to mean anything
CHUNK = 8 * 1024 * 1024
CONTEXT = 40  # characters shown on each side of a hit
SANDBOX_MARKER = "sandbox.log"  # sandbox.process.start_sandbox writes it into each data dir


@dataclass(frozen=True)
class Hit:
    secret_of: str  # what the secret is (never the secret)
    where: str  # a file, "xcom <dag>/<run>/<task>/<key>", "log record ...", "page GET /ui/..."
    offset: int
    context: str  # the text around the hit, the secret masked

    def __str__(self) -> str:
        return f"{self.secret_of} in {self.where} at offset {self.offset}: ...{self.context}..."


def mask(secret: str) -> str:
    return f"{secret[:2]}…({len(secret)} chars)"


def forms(secret: str) -> set[str]:
    """The secret and how a URL or a query string would carry it."""
    return {secret, quote(secret, safe=""), quote(secret, safe="").replace("%20", "+")}


def find_in_text(text: str, secrets: dict[str, str], where: str) -> list[Hit]:
    hits = []
    for secret, what in secrets.items():
        for form in forms(secret):
            start = text.find(form)
            while start >= 0:
                around = text[max(0, start - CONTEXT) : start + len(form) + CONTEXT]
                hits.append(
                    Hit(what, where, start, around.replace(form, mask(secret)).replace("\n", " "))
                )
                start = text.find(form, start + 1)
    return hits


def find_in_file(path: Path, secrets: dict[str, str]) -> list[Hit]:
    """Hits in a file of any size or encoding (read as bytes, in chunks that overlap)."""
    needles = {f.encode(): (s, what) for s, what in secrets.items() for f in forms(s)}
    if not needles:
        return []
    overlap = max(len(n) for n in needles) - 1
    hits: list[Hit] = []
    with contextlib.suppress(OSError), open(path, "rb") as fh:
        base, tail = 0, b""
        while chunk := fh.read(CHUNK):
            data = tail + chunk
            for needle, (secret, what) in needles.items():
                at = data.find(needle)
                while at >= 0:
                    around = data[max(0, at - CONTEXT) : at + len(needle) + CONTEXT]
                    text = around.decode("utf-8", "replace").replace(needle.decode(), mask(secret))
                    hits.append(Hit(what, str(path), base + at, text.replace("\n", " ")))
                    at = data.find(needle, at + 1)
            keep = min(overlap, len(data))
            base += len(data) - keep
            tail = data[len(data) - keep :] if keep else b""
    # a hit inside the overlap is found twice
    return sorted(set(hits), key=lambda h: h.offset)


def walk_files(root: Path) -> Iterator[Path]:
    """Every file under ``root``, sandbox data directories left out."""
    for dirpath, dirnames, filenames in os.walk(root):
        if SANDBOX_MARKER in filenames:
            dirnames[:] = []
            continue
        for name in filenames:
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink():
                yield path


def scan_tree(root: Path, secrets: dict[str, str]) -> tuple[list[Hit], int, int]:
    """(hits, files read, bytes read) under ``root``."""
    hits: list[Hit] = []
    files = size = 0
    for path in walk_files(root):
        files += 1
        with contextlib.suppress(OSError):
            size += path.stat().st_size
        hits += find_in_file(path, secrets)
    return hits, files, size


def xcom_hits(db: Path, secrets: dict[str, str]) -> tuple[list[Hit], int]:
    """Hits in the XCom rows of a SQLite Airflow metadata DB (read only), and the rows read."""
    if not db.is_file():
        return [], 0
    uri = f"file:{db}?mode=ro"
    try:
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as conn:
            rows = conn.execute("SELECT dag_id, run_id, task_id, key, value FROM xcom").fetchall()
    except sqlite3.Error:
        return [], 0
    hits = []
    for dag_id, run_id, task_id, key, value in rows:
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        hits += find_in_text(text, secrets, f"xcom {dag_id}/{run_id}/{task_id}/{key}")
    return hits, len(rows)


def connection_secrets(environ: dict[str, str]) -> dict[str, str]:
    """Passwords and tokens of the ``AIRFLOW_CONN_*`` variables (JSON or URI form)."""
    out: dict[str, str] = {}
    for name, value in environ.items():
        if not name.startswith("AIRFLOW_CONN_"):
            continue
        conn_id = name[len("AIRFLOW_CONN_") :].lower()
        for key, secret in _conn_values(value):
            if any(k in key.lower() for k in SECRET_KEYS) and len(secret) >= MIN_SECRET:
                out[secret] = f"{key} of connection {conn_id}"
    return out


def _conn_values(value: str) -> Iterable[tuple[str, str]]:
    try:
        doc = json.loads(value)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        extra = doc.get("extra") or {}
        if isinstance(extra, str):
            with contextlib.suppress(ValueError):
                extra = json.loads(extra)
        items = {**(extra if isinstance(extra, dict) else {}), **doc}
        return [(k, str(v)) for k, v in items.items() if isinstance(v, str | int)]
    try:
        parts = urlsplit(value)
    except ValueError:
        return []
    found = [(k, v) for k, v in parse_qsl(parts.query)]
    if parts.password:
        found.append(("password", unquote(parts.password)))
    return found


# -- the session ---------------------------------------------------------------------------


@dataclass
class SessionScan:
    """What the session has seen so far; scans texts as they appear, files at the end."""

    secrets: dict[str, str] = field(default_factory=lambda: dict(KNOWN_SECRETS))
    hits: list[Hit] = field(default_factory=list)
    counts: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(("log records", "captured outputs", "pages"), 0)
    )

    def add_secrets(self, found: dict[str, str]) -> None:
        for secret, what in found.items():
            self.secrets.setdefault(secret, what)

    def text(self, text: str, where: str, kind: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if text:
            self.hits += find_in_text(text, self.secrets, where)

    def finish(self, roots: list[Path], airflow_db: Path) -> list[Hit]:
        seen: set[Path] = set()
        for root in roots:
            root = root.resolve()
            if root in seen or not root.exists() or any(p in seen for p in root.parents):
                continue
            seen.add(root)
            hits, files, size = scan_tree(root, self.secrets)
            self.hits += hits
            self.counts["files"] = self.counts.get("files", 0) + files
            self.counts["bytes"] = self.counts.get("bytes", 0) + size
        hits, rows = xcom_hits(airflow_db, self.secrets)
        self.hits += hits
        self.counts["xcom rows"] = rows
        return self.hits

    def summary(self) -> str:
        shown = ", ".join(f"{v} {k}" for k, v in sorted(self.counts.items()))
        return f"{len(self.secrets)} secrets searched in {shown}"


SCAN = SessionScan()


def scan_record(record: logging.LogRecord) -> None:
    """One log record as a handler would write it (message and traceback)."""
    try:
        text = logging.Formatter().format(record)
    except Exception:  # a record that cannot be formatted cannot be written either
        return
    where = f"log record of {record.name} ({record.pathname}:{record.lineno})"
    SCAN.text(text, where, "log records")


def _listen_to_logs() -> None:
    """Every record any logger dispatches, whatever handlers Airflow's logging configuration
    installs or replaces during the session: ``Logger.callHandlers`` is the one place each
    record passes (after the loggers' filters, such as the library's SecretsFilter)."""
    original = logging.Logger.callHandlers
    if getattr(original, "_secret_scan", False):
        return

    def call_handlers(self: logging.Logger, record: logging.LogRecord) -> None:
        scan_record(record)
        original(self, record)

    call_handlers._secret_scan = True  # type: ignore[attr-defined]
    logging.Logger.callHandlers = call_handlers  # type: ignore[method-assign]


def _record_test_client_pages() -> None:
    """Every response a ``TestClient`` (the Sync health tests' client) receives."""
    with warnings.catch_warnings():  # its deprecation notice is for the tests that use it
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    if getattr(TestClient.request, "_secret_scan", False):
        return
    original = TestClient.request

    def request(self: Any, method: str, url: Any, *args: Any, **kwargs: Any) -> Any:
        response = original(self, method, url, *args, **kwargs)
        SCAN.text(response.text, f"page {method} {url}", "pages")
        return response

    request._secret_scan = True  # type: ignore[attr-defined]
    TestClient.request = request  # type: ignore[method-assign]


def _record_browser_pages() -> None:
    """The HTML of every page the headless-browser tests load (once their module is loaded)."""
    module = __import__("sys").modules.get("tests.e2e.conftest_health")
    browser = getattr(module, "Browser", None)
    if browser is None or getattr(browser.goto, "_secret_scan", False):
        return
    original = browser.goto

    async def goto(self: Any, url: str) -> Any:
        status = await original(self, url)
        html = await self.eval("document.documentElement.outerHTML")
        SCAN.text(str(html or ""), f"browser page {url}", "pages")
        return status

    goto._secret_scan = True  # type: ignore[attr-defined]
    browser.goto = goto


def pytest_configure(config: pytest.Config) -> None:
    SCAN.add_secrets(connection_secrets(dict(os.environ)))
    _listen_to_logs()
    _record_test_client_pages()


def pytest_runtest_setup(item: pytest.Item) -> None:
    SCAN.add_secrets(connection_secrets(dict(os.environ)))
    _record_browser_pages()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for title, content in report.sections:
        SCAN.text(content, f"{report.nodeid} ({title})", "captured outputs")
    if report.failed and report.longrepr is not None:
        SCAN.text(str(report.longrepr), f"{report.nodeid} (failure report)", "captured outputs")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    home = Path(os.environ.get("AIRFLOW_HOME", ""))
    roots = [home]
    factory = getattr(config, "_tmp_path_factory", None)
    if factory is not None:
        with contextlib.suppress(OSError, ValueError):
            roots.append(factory.getbasetemp())
    hits = SCAN.finish(roots, home / "airflow.db")
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    lines = [str(h) for h in hits[:50]] + (
        [f"... and {len(hits) - 50} more"] if len(hits) > 50 else []
    )
    if reporter is not None:
        reporter.write_sep("=", "secret scan")
        reporter.write_line(f"{SCAN.summary()}: {len(hits)} hits")
        for line in lines:
            reporter.write_line(line, red=True)
    if hits:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
