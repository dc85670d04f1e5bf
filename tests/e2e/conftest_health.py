"""Shared fixtures of the sync health tests: a realistic state store, the real api-server, and a
headless Chromium driven over the DevTools protocol.

``fill_health_store`` writes through the public ``SyncStore`` API what the DAGs write (runs with
reports shaped like the people record stage's, links with their history, quarantine rows of every
category, held items); only the run start times are moved back afterwards, so that the data spans
several days (the store stamps "now" itself). Secret-looking values all contain ``SUPERSECRET``
so a test can check that none of them leaks into any output.

Imported by ``tests/unit/test_health_api.py`` and ``tests/e2e/test_health_browser.py``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import update

from crm_sync.state.models import Run
from crm_sync.state.store import SyncStore

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
SECRET_MARK = "SUPERSECRET"
PEOPLE_DAG = "sync_leads_contacts"
OPPS_DAG = "sync_opportunities"
# Small budget so the seeded calls are a visible share of it (set through the environment, as a
# deployment would).
TEST_BUDGET = 1000
TEST_RETRY_STOP_SHARE = 0.75


@dataclass
class HealthData:
    """What ``fill_health_store`` wrote, for assertions."""

    quarantine: dict[str, int] = field(default_factory=dict)  # name -> row id
    sf_calls_24h: int = 0  # Salesforce calls of runs started in the last 24 h
    active_quarantine_rows: int = 0
    rows_by_category: dict[str, int] = field(default_factory=dict)  # active rows, all DAGs


def _people_report(
    run_id: str,
    start: datetime,
    *,
    sf: dict[str, int],
    lg: dict[str, int],
    links: dict[str, int],
    quarantined: int,
    sf_calls: int,
    lg_calls: int,
    status: str = "success",
    examples: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A report with the shape ``crm_sync.pipeline.tally.build_report`` builds for the people DAG."""
    pairs = sum(sf.values()) + sum(lg.values()) + 3
    planned = sum(sf.values()) + sum(lg.values())
    rejected = sf.get("failed", 0) + lg.get("failed", 0)
    return {
        "dag_id": PEOPLE_DAG,
        "run_id": run_id,
        "window": {
            "start": start.isoformat(),
            "end": (start + timedelta(hours=1)).isoformat(),
            "caught_up_from": None,
        },
        "dry_run": status == "dry_run",
        "full_resync": False,
        "extracted": {"leadgen": pairs - 2, "salesforce": pairs - 1},
        "pairs": pairs,
        "salesforce": sf,
        "leadgen": lg,
        "links": links,
        "unchanged": 3,
        "quarantined": quarantined,
        "quarantine_resolved": 1,
        "events": {"converted": links.get("converted", 0), "conflict": 1},
        "event_examples": {"converted": ["00Q000000000001AAA converted to 003000000000001AAA"]},
        "rejected_rows": rejected,
        "planned_rows": planned,
        "reject_rate": round(rejected / planned, 4) if planned else 0.0,
        "max_reject_rate": 0.2,
        "validation": {"checks": {"emailAddress:format": 1}, "top_failures": {}},
        "quarantine_examples": examples or [],
        "api_calls": {"salesforce": sf_calls, "leadgen": lg_calls},
        "status": status,
    }


def _run(
    store: SyncStore,
    dag_id: str,
    run_id: str,
    *,
    started: datetime,
    report: dict[str, Any],
    status: str,
    message: str | None = None,
) -> None:
    window_start = started.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    store.start_run(
        dag_id,
        run_id,
        window_start=window_start,
        window_end=window_start + timedelta(hours=1),
        dry_run=status == "dry_run",
        full_resync=False,
    )
    store.finish_run(
        dag_id,
        run_id,
        status=status,
        report=report,
        sf_api_calls=int(report["api_calls"]["salesforce"]),
        lg_api_calls=int(report["api_calls"]["leadgen"]),
        message=message,
    )
    # The store stamps start and finish with "now"; move them to the intended time.
    with store.session() as s:
        s.execute(
            update(Run)
            .where(Run.dag_id == dag_id, Run.run_id == run_id)
            .values(
                started_at=started.astimezone(UTC).replace(tzinfo=None),
                finished_at=(started + timedelta(minutes=3)).astimezone(UTC).replace(tzinfo=None),
            )
        )


def _q(store: SyncStore, data: HealthData, name: str, **kw: Any) -> None:
    kw.setdefault("dag_id", PEOPLE_DAG)
    kw.setdefault("domain", "person")
    kw.setdefault("run_id", "scheduled__r3")
    kw.setdefault("max_attempts", 5)
    kw.setdefault("target_object", "Lead" if kw["direction"] == "lg_to_sf" else "lead")
    item = store.quarantine(**kw)
    data.quarantine[name] = item.id


def fill_health_store(store: SyncStore, *, now: datetime | None = None) -> HealthData:
    """Write a realistic day-to-day state: two DAGs, runs over three days, links with
    conversions, merges, deactivations and relinks, quarantine rows of every category."""
    now = now or datetime.now(UTC)
    data = HealthData()

    # -- runs --------------------------------------------------------------------------------
    leaked_url = f"https://api.sharpspring.com/pubapi/v1.2/?accountID=ACC1&secretKey={SECRET_MARK}5"
    runs = [
        # dag, run_id, started, report, status, message
        (
            PEOPLE_DAG,
            "scheduled__r1",
            now - timedelta(days=2, hours=3),
            _people_report(
                "scheduled__r1",
                now - timedelta(days=2, hours=4),
                sf={"created": 5, "updated": 3},
                lg={"created": 2, "updated": 4},
                links={"created": 5, "paired_by_email": 2},
                quarantined=0,
                sf_calls=40,
                lg_calls=12,
            ),
            "success",
            None,
        ),
        (
            PEOPLE_DAG,
            "scheduled__r2",
            now - timedelta(hours=30),
            _people_report(
                "scheduled__r2",
                now - timedelta(hours=31),
                sf={"created": 1, "updated": 2, "failed": 3},
                lg={"updated": 1},
                links={"created": 1},
                quarantined=4,
                sf_calls=300,
                lg_calls=9,
                status="threshold_exceeded",
                examples=[
                    {
                        "record_key": "lg:1006",
                        "direction": "lg_to_sf",
                        "category": "required field",
                        "check": "salesforce:REQUIRED_FIELD_MISSING",
                        "field": "LastName",
                        "message": f"rejected, request was {leaked_url}",
                    }
                ],
            ),
            "threshold_exceeded",
            "3 of 7 rows rejected (42.9% > limit 20.0%); good rows were loaded.",
        ),
        (
            PEOPLE_DAG,
            "scheduled__r3",
            now - timedelta(hours=2),
            _people_report(
                "scheduled__r3",
                now - timedelta(hours=3),
                sf={"created": 2, "updated": 6, "failed": 1},
                lg={"created": 1, "updated": 3, "deactivated": 1, "reactivated": 1},
                links={
                    "created": 2,
                    "converted": 1,
                    "merged": 1,
                    "deactivated": 1,
                    "relinked": 1,
                },
                quarantined=7,
                sf_calls=120,
                lg_calls=30,
            ),
            "success",
            None,
        ),
        (
            PEOPLE_DAG,
            "manual__dry",
            now - timedelta(hours=1),
            _people_report(
                "manual__dry",
                now - timedelta(hours=2),
                sf={"would_create": 2, "would_update": 1},
                lg={"would_update": 1},
                links={},
                quarantined=0,
                sf_calls=15,
                lg_calls=4,
                status="dry_run",
            ),
            "dry_run",
            None,
        ),
        (
            OPPS_DAG,
            "scheduled__o1",
            now - timedelta(hours=1, minutes=30),
            {
                "dag_id": OPPS_DAG,
                "run_id": "scheduled__o1",
                "window": {"start": None, "end": None},
                "opportunities": {"created": 4, "updated": 1, "failed": 1},
                "contact_roles": {"created": 3, "held": 2},
                "quarantined": 1,
                "api_calls": {"salesforce": 60, "leadgen": 8},
                "status": "success",
            },
            "success",
            None,
        ),
    ]
    for dag_id, run_id, started, report, status, message in runs:
        _run(store, dag_id, run_id, started=started, report=report, status=status, message=message)
        if now - started < timedelta(hours=24):
            data.sf_calls_24h += int(report["api_calls"]["salesforce"])
    store.advance_watermark(PEOPLE_DAG, "people", now - timedelta(hours=2), "scheduled__r3")

    # -- links and their history ---------------------------------------------------------------
    ann = {
        "emailAddress": "ann.archer@example.com",
        "firstName": "Ann",
        "lastName": "Archer",
        "companyName": "Archer & Co",
        "website": f"https://archer.example.com/welcome?ref=crm&secretKey={SECRET_MARK}6",
    }
    store.upsert_link(
        "person", "1001", "Lead", "00Q000000000001AAA", synced_values=ann, run_id="scheduled__r1"
    )
    store.upsert_link(
        "person",
        "1001",
        "Contact",
        "003000000000001AAA",
        synced_values={"title": "CTO"},
        run_id="scheduled__r3",
        event="converted",
        detail="00Q000000000001AAA converted to 003000000000001AAA",
    )
    store.upsert_link(
        "person",
        "1002",
        "Lead",
        "00Q000000000002AAA",
        synced_values={"emailAddress": "bob.baker@example.com", "lastName": "Baker"},
        run_id="scheduled__r1",
        event="paired_by_email",
    )
    store.upsert_link(
        "person",
        "1002",
        "Lead",
        "00Q000000000003AAA",
        run_id="scheduled__r3",
        event="merged",
        detail="00Q000000000002AAA merged into 00Q000000000003AAA",
    )
    store.upsert_link(
        "person",
        "1003",
        "Lead",
        "00Q000000000004AAA",
        synced_values={"emailAddress": "cy.cole@example.com"},
        run_id="scheduled__r1",
    )
    store.set_link_status(
        "person",
        "1003",
        "deleted",
        event="deactivated",
        run_id="scheduled__r3",
        detail="00Q000000000004AAA deleted in Salesforce",
    )
    store.upsert_link(
        "person",
        "1004",
        "Lead",
        "00Q000000000005AAA",
        synced_values={"emailAddress": "dee.dunn@example.com", "city": "Leeds"},
        run_id="scheduled__r1",
    )
    store.upsert_link(
        "person",
        "1004",
        "Lead",
        "00Q000000000009AAA",
        synced_values={"emailAddress": "dee.dunn@example.com"},
        run_id="scheduled__r3",
        event="relinked",
        detail="lead reactivated",
        merge_values=False,
    )
    store.upsert_link("person", "1005", "Lead", "00Q000000000010AAA", run_id="scheduled__r1")
    store.delete_link("person", "1005", run_id="scheduled__r2")

    # -- quarantine --------------------------------------------------------------------------
    _q(
        store,
        data,
        "required",
        direction="lg_to_sf",
        record_key="lg:1006",
        lg_id="1006",
        sf_id=None,
        category="required field",
        check="salesforce:REQUIRED_FIELD_MISSING",
        field="LastName",
        error_code="REQUIRED_FIELD_MISSING",
        message="Salesforce Lead (new) (lead 1006) rejected the create: "
        "Required fields are missing: [LastName]",
        payload={
            "Email": "Eve.Evans@Example.com",
            "Company": "Evans Ltd",
            "LeadGen_URL__c": f"https://app.sharpspring.com/Contacts/View/1006?secretKey={SECRET_MARK}1",
        },
    )
    _q(
        store,
        data,
        "duplicate_ann",
        direction="lg_to_sf",
        record_key="lg:1001",
        lg_id="1001",
        sf_id="003000000000001AAA",
        target_object="Contact",
        category="duplicate",
        check="salesforce:DUPLICATES_DETECTED",
        field=None,
        error_code="DUPLICATES_DETECTED",
        message="Salesforce Contact 003000000000001AAA (lead 1001) rejected the update: "
        f"Use one of these records? (request {leaked_url})",
        payload={"Email": "ann.archer@example.com", "secretKey": f"{SECRET_MARK}2"},
    )
    _q(
        store,
        data,
        "duplicate_other",
        direction="lg_to_sf",
        record_key="lg:1014",
        lg_id="1014",
        sf_id=None,
        category="duplicate",
        check="salesforce:DUPLICATE_VALUE",
        field="Email",
        error_code="DUPLICATE_VALUE",
        message="duplicate value found: Email duplicates value on record with id: 00Q000000000011AAA",
        payload={"Email": '=HYPERLINK("http://evil.example")', "LastName": "Fox"},
    )
    # Rejected three runs in a row with max_attempts 3: parked.
    for run in ("scheduled__r1", "scheduled__r2", "scheduled__r3"):
        _q(
            store,
            data,
            "format_parked",
            direction="sf_to_lg",
            record_key="sf:00Q000000000007AAA",
            lg_id=None,
            sf_id="00Q000000000007AAA",
            category="format",
            check="emailAddress:format",
            field="emailAddress",
            error_code=None,
            message="emailAddress 'gil(at)example' is not a valid email address",
            payload={
                "emailAddress": "gil(at)example",
                "firstName": "Gil",
                "sessionId": f"{SECRET_MARK}7",
            },
            run_id=run,
            max_attempts=3,
        )
    _q(
        store,
        data,
        "picklist",
        direction="lg_to_sf",
        record_key="lg:1008",
        lg_id="1008",
        sf_id="00Q000000000008AAA",
        category="picklist",
        check="salesforce:INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        field="Industry",
        error_code="INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        message="Industry: bad value for restricted picklist field: Space Mining",
        payload={"Industry": "Space Mining"},
    )
    _q(
        store,
        data,
        "validation_rule",
        direction="lg_to_sf",
        record_key="lg:1009",
        lg_id="1009",
        sf_id="00Q000000000012AAA",
        category="validation rule",
        check="salesforce:FIELD_CUSTOM_VALIDATION_EXCEPTION",
        field="Phone",
        error_code="FIELD_CUSTOM_VALIDATION_EXCEPTION",
        message="Phone must start with + and a country code",
        payload={"Phone": "0113 496 0000"},
    )
    _q(
        store,
        data,
        "permission",
        direction="lg_to_sf",
        record_key="lg:1010",
        lg_id="1010",
        sf_id="00Q000000000013AAA",
        category="permission",
        check="salesforce:INSUFFICIENT_ACCESS_OR_READONLY",
        field="OwnerId",
        error_code="INSUFFICIENT_ACCESS_OR_READONLY",
        message="insufficient access rights on cross-reference id: 005000000000001AAA",
        payload={"OwnerId": "005000000000001AAA", "password": f"{SECRET_MARK}8"},
    )
    _q(
        store,
        data,
        "missing_link",
        direction="sf_to_lg",
        record_key="sf:003000000000011AAA",
        lg_id="1011",
        sf_id="003000000000011AAA",
        category="missing link",
        check="leadgen:404",
        field=None,
        error_code="404",
        message="Lead Gen & CRM lead 1011 (Salesforce Contact 003000000000011AAA) rejected "
        "the update: lead not found",
        payload={"id": "1011", "title": "VP Sales"},
    )
    _q(
        store,
        data,
        "length",
        direction="lg_to_sf",
        record_key="lg:1012",
        lg_id="1012",
        sf_id="00Q000000000014AAA",
        category="length",
        check="max_length",
        field="Title",
        error_code=None,
        message="Title is 140 characters, at most 128 allowed",
        payload={"Title": "x" * 140},
    )
    _q(
        store,
        data,
        "resolved",
        direction="lg_to_sf",
        record_key="lg:1013",
        lg_id="1013",
        sf_id="00Q000000000015AAA",
        category="format",
        check="salesforce:INVALID_EMAIL_ADDRESS",
        field="Email",
        error_code="INVALID_EMAIL_ADDRESS",
        message="invalid email address: hal@",
        payload={"Email": "hal@"},
        run_id="scheduled__r2",
    )
    store.resolve_quarantine(PEOPLE_DAG, "lg_to_sf", ["lg:1013"], "scheduled__r3")
    _q(
        store,
        data,
        "opportunity_other",
        dag_id=OPPS_DAG,
        domain="opportunity",
        direction="lg_to_sf",
        record_key="lg:opp-77",
        lg_id="opp-77",
        sf_id=None,
        target_object="Opportunity",
        category="other",
        check="salesforce:UNKNOWN_EXCEPTION",
        field=None,
        error_code="UNKNOWN_EXCEPTION",
        message="An unexpected error occurred. Please include this ErrorId: 1234-5678",
        payload={"Name": "Renewal 2027", "Amount": 12000},
        run_id="scheduled__o1",
    )
    active = [n for n in data.quarantine if n != "resolved"]
    data.active_quarantine_rows = len(active)
    cats = {
        "required": "required field",
        "duplicate_ann": "duplicate",
        "duplicate_other": "duplicate",
        "format_parked": "format",
        "picklist": "picklist",
        "validation_rule": "validation rule",
        "permission": "permission",
        "missing_link": "missing link",
        "length": "length",
        "opportunity_other": "other",
    }
    for name in active:
        data.rows_by_category[cats[name]] = data.rows_by_category.get(cats[name], 0) + 1

    # -- held items ------------------------------------------------------------------------------
    store.hold(
        OPPS_DAG,
        "contact_role",
        "opp-77:1020",
        payload={"role": "Decision Maker", "sessionId": f"{SECRET_MARK}4"},
        reason="person lg:1020 is not linked yet",
        waiting_for="person:1020",
    )
    store.hold(
        OPPS_DAG,
        "contact_role",
        "opp-78:1021",
        payload={"role": "Influencer"},
        reason="person lg:1021 is not linked yet",
        waiting_for="person:1021",
    )
    return data


# -- the real api-server ------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ApiServer:
    """A running ``airflow api-server`` with the repo's plugins and a seeded state store."""

    base_url: str
    home: Path
    state_db: Path
    data: HealthData
    log_path: Path
    process: subprocess.Popen[bytes]

    def token(self, username: str = "admin", password: str = "admin") -> str:
        resp = httpx.post(
            f"{self.base_url}/auth/token",
            json={"username": username, "password": password},
            timeout=30,
        )
        assert resp.status_code == 201, f"POST /auth/token -> {resp.status_code}: {resp.text}"
        return str(resp.json()["access_token"])

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _server_env(home: Path, port: int, state_db: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW__"))}
    passwords = home / "passwords.json"
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,vic:viewer",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW_CONN_SYNC_STATE": f"sqlite:///{state_db}",
            "CRM_SYNC_HOME": str(home / "crm_sync"),
            "CRM_SYNC_SF_API_BUDGET": str(TEST_BUDGET),
            "CRM_SYNC_RETRY_STOP_SHARE": str(TEST_RETRY_STOP_SHARE),
            "GX_ANALYTICS_ENABLED": "false",
            "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "plugins"), str(REPO_ROOT)]),
        }
    )
    passwords.write_text(json.dumps({"admin": "admin", "vic": "vic"}))
    return env


@contextlib.contextmanager
def run_api_server(timeout: float = 90.0) -> Iterator[ApiServer]:
    """Migrate a fresh metadata DB, seed a state store, start ``airflow api-server``; stop it
    (and only it) afterwards."""
    tmp = Path(tempfile.mkdtemp(prefix="crm_sync_health_e2e_"))
    home = tmp / "airflow_home"
    home.mkdir()
    state_db = tmp / "state.db"
    store = SyncStore(f"sqlite:///{state_db}")
    data = fill_health_store(store)
    store.dispose()
    port = free_port()
    env = _server_env(home, port, state_db)
    airflow_bin = str(Path(sys.executable).with_name("airflow"))
    migrate = subprocess.run(
        [airflow_bin, "db", "migrate"], env=env, capture_output=True, text=True, timeout=180
    )
    assert migrate.returncode == 0, f"airflow db migrate failed:\n{migrate.stderr[-3000:]}"
    log_path = tmp / "api-server.log"
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(
            [airflow_bin, "api-server", "--port", str(port), "--host", "127.0.0.1"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = ApiServer(
        base_url=f"http://127.0.0.1:{port}",
        home=home,
        state_db=state_db,
        data=data,
        log_path=log_path,
        process=proc,
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            assert proc.poll() is None, f"api-server exited early:\n{server.log_tail()}"
            try:
                if (
                    httpx.get(f"{server.base_url}/api/v2/monitor/health", timeout=2).status_code
                    == 200
                ):
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, (
                f"api-server not up in {timeout}s:\n{server.log_tail()}"
            )
            time.sleep(0.3)
        yield server
    finally:
        _stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the api-server's process group (uvicorn's worker runs in it), by its id."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, 15)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
        proc.wait(timeout=10)


# -- headless Chromium over the DevTools protocol ------------------------------------------------
CHROMIUM = "/usr/bin/chromium"


class Browser:
    """One headless Chromium with one page target, driven with ``websockets`` (no other deps).

    ``goto`` navigates and waits for the load event; ``text`` returns ``document.body.innerText``;
    ``screenshot`` writes a full-page PNG. Cookies are set through ``Network.setCookie``, the
    same way a login would leave them.
    """

    def __init__(self, ws_url: str) -> None:
        self.ws_url = ws_url
        self._ws: Any = None
        self._next_id = 0
        self._events: list[dict[str, Any]] = []

    async def __aenter__(self) -> Browser:
        import websockets

        self._ws = await websockets.connect(self.ws_url, max_size=64 * 1024 * 1024)
        await self.send("Page.enable")
        await self.send("Network.enable")
        await self.send("Runtime.enable")
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            width=1400,
            height=900,
            deviceScaleFactor=1,
            mobile=False,
        )
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self._ws.close()

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        msg_id = self._next_id
        await self._ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            msg = json.loads(await asyncio.wait_for(self._ws.recv(), timeout=30))
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return dict(msg.get("result") or {})
            self._events.append(msg)

    async def wait_event(self, method: str, timeout: float = 30) -> dict[str, Any]:
        for i, ev in enumerate(self._events):
            if ev.get("method") == method:
                return self._events.pop(i)
        while True:
            msg = json.loads(await asyncio.wait_for(self._ws.recv(), timeout=timeout))
            if msg.get("method") == method:
                return msg
            self._events.append(msg)

    async def goto(self, url: str) -> int | None:
        """Navigate, wait for load; return the HTTP status of the document."""
        self._events.clear()
        await self.send("Page.navigate", url=url)
        await self.wait_event("Page.loadEventFired")
        status = None
        for ev in self._events:
            if (
                ev.get("method") == "Network.responseReceived"
                and ev["params"].get("type") == "Document"
            ):
                status = int(ev["params"]["response"]["status"])
        return status

    async def eval(self, expression: str) -> Any:
        res = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in res:
            raise RuntimeError(f"JS error: {res['exceptionDetails']}")
        return res["result"].get("value")

    async def text(self) -> str:
        return str(await self.eval("document.body ? document.body.innerText : ''"))

    async def screenshot(self, path: Path) -> None:
        metrics = await self.send("Page.getLayoutMetrics")
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        shot = await self.send(
            "Page.captureScreenshot",
            format="png",
            captureBeyondViewport=True,
            clip={
                "x": 0,
                "y": 0,
                "width": 1400,
                "height": min(float(size["height"]), 4000),
                "scale": 1,
            },
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))


@contextlib.contextmanager
def run_chromium(timeout: float = 30.0) -> Iterator[str]:
    """Start headless Chromium with a fresh profile; yield the page target's websocket URL."""
    assert Path(CHROMIUM).exists(), (
        f"{CHROMIUM} is missing: the browser test needs Debian's chromium "
        "(run scripts/ensure_browser.sh, which `make test` does)"
    )
    profile = Path(tempfile.mkdtemp(prefix="crm_sync_chromium_"))
    port = free_port()
    proc = subprocess.Popen(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            f"--user-data-dir={profile}",
            f"--remote-debugging-port={port}",
            "--remote-allow-origins=*",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + timeout
        ws_url = None
        while ws_url is None:
            assert proc.poll() is None, "chromium exited at start"
            try:
                targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=2).json()
                pages = [t for t in targets if t.get("type") == "page"]
                if pages:
                    ws_url = pages[0]["webSocketDebuggerUrl"]
            except (httpx.HTTPError, ValueError):
                pass
            if ws_url is None:
                assert time.monotonic() < deadline, "chromium's DevTools endpoint did not come up"
                time.sleep(0.2)
        yield ws_url
    finally:
        _stop(proc)  # type: ignore[arg-type]
        shutil.rmtree(profile, ignore_errors=True)
