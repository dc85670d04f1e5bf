"""Sync health app: every JSON endpoint and page over a seeded state store (TestClient).

The store is filled through the ``SyncStore`` API by ``fill_health_store`` (runs of two DAGs over
three days, links with conversions/merges/deactivations/relinks, quarantine rows of every
category, held items). Authentication is Airflow's own ``get_user`` dependency: the tests that
check refusals run it for real (no credentials -> 401); the others replace it with a signed-in
user, because validating a real JWT needs the Airflow metadata DB (the browser test covers that
path against a real api-server). To run these tests on another store (for example one filled by
a real sync run), override the ``health_store_url`` fixture.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from airflow.api_fastapi.core_api.security import get_user
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from crm_sync.health import present
from crm_sync.health.app import create_app, dag_edit_check
from crm_sync.health.changes import dag_trigger_check
from crm_sync.health.lazy import LazyASGIApp
from crm_sync.settings import default_state_url
from crm_sync.state.store import SyncStore
from tests.e2e.conftest_health import (
    OPPS_DAG,
    PEOPLE_DAG,
    SECRET_MARK,
    TEST_BUDGET,
    TEST_RETRY_STOP_SHARE,
    HealthData,
    fill_health_store,
)

pytestmark = pytest.mark.unit

JSON_HEADERS = {"Content-Type": "application/json"}


class FakeUser:
    """Stands in for the SimpleAuthManager user ``get_user`` would return."""

    def __init__(self, name: str = "admin") -> None:
        self.name = name

    def get_name(self) -> str:
        return self.name


# -- fixtures ------------------------------------------------------------------------------------
@pytest.fixture
def seeded(tmp_path: Any) -> tuple[str, HealthData]:
    url = f"sqlite:///{tmp_path / 'health_state.db'}"
    store = SyncStore(url)
    data = fill_health_store(store)
    store.dispose()
    return url, data


@pytest.fixture
def health_store_url(seeded: tuple[str, HealthData]) -> str:
    """The store under test (swap in another URL to run the suite on other data)."""
    return seeded[0]


@pytest.fixture
def data(seeded: tuple[str, HealthData]) -> HealthData:
    return seeded[1]


@pytest.fixture(autouse=True)
def budget_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_SYNC_SF_API_BUDGET", str(TEST_BUDGET))
    monkeypatch.setenv("CRM_SYNC_RETRY_STOP_SHARE", str(TEST_RETRY_STOP_SHARE))


@pytest.fixture
def app(health_store_url: str) -> Iterator[FastAPI]:
    application = create_app(state_url=health_store_url)
    yield application
    application.state.store_provider.dispose()


@pytest.fixture
def edit_allowed() -> dict[str, bool]:
    """Per-DAG answer of the (faked) auth manager for retry; True unless a test says otherwise."""
    return {}


@pytest.fixture
def client(app: FastAPI, edit_allowed: dict[str, bool]) -> Iterator[TestClient]:
    app.dependency_overrides[get_user] = lambda: FakeUser()
    app.dependency_overrides[dag_trigger_check] = lambda: lambda dag_id: True
    app.dependency_overrides[dag_edit_check] = lambda: lambda dag_id: edit_allowed.get(dag_id, True)
    with TestClient(app) as c:
        yield c
    app.dependency_overrides.clear()


@pytest.fixture
def anon(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


def _store(url: str) -> SyncStore:
    return SyncStore(url, migrate=False)


# -- authentication --------------------------------------------------------------------------------
def _all_routes(app: FastAPI) -> list[tuple[str, str]]:
    routes = []
    for r in app.routes:
        if isinstance(r, APIRoute):
            for method in sorted(r.methods):
                path = r.path.replace("{item_id}", "1").replace("{dag_id}", PEOPLE_DAG)
                routes.append((method, path.replace("{run_id:path}", "scheduled__r1")))
    return routes


def test_every_route_requires_an_airflow_login(app: FastAPI, anon: TestClient) -> None:
    routes = _all_routes(app)
    # The app's own routes, so a route added later is checked too.
    assert ("GET", "/ui/overview") in routes and ("POST", "/api/quarantine/retry") in routes
    assert len(routes) >= 14
    for method, path in routes:
        kwargs: dict[str, Any] = {"params": {"q": "1001"}} if "lookup" in path else {}
        if method == "POST":
            kwargs = {"json": {"ids": [1]}}
        resp = anon.request(method, path, **kwargs)
        assert resp.status_code == 401, f"{method} {path} answered {resp.status_code} without login"
        assert SECRET_MARK not in resp.text
        assert "ann.archer" not in resp.text


def test_openapi_schema_lists_the_api_behind_the_login(
    client: TestClient, anon: TestClient
) -> None:
    schema = client.get("/api/openapi.json").json()
    assert "/api/quarantine/retry" in schema["paths"] and "/ui/overview" not in schema["paths"]
    assert anon.get("/openapi.json").status_code == 404 and anon.get("/docs").status_code == 404


def test_refusals_are_json_for_the_api_and_a_sign_in_page_for_pages(anon: TestClient) -> None:
    api = anon.get("/api/runs")
    assert api.status_code == 401 and api.json() == {"detail": "Not authenticated"}
    page = anon.get("/ui/quarantine")
    assert page.status_code == 401
    assert page.headers["content-type"].startswith("text/html")
    assert "Sign in to Airflow" in page.text
    assert "REQUIRED_FIELD_MISSING" not in page.text


def test_a_bearer_token_is_what_the_dependency_reads(app: FastAPI) -> None:
    """The pages trust exactly what Airflow's get_user returns (Bearer header or _token cookie)."""
    seen: list[str] = []

    def fake_get_user(request: Any = None) -> FakeUser:
        seen.append("called")
        return FakeUser("vic")

    app.dependency_overrides[get_user] = fake_get_user
    with TestClient(app) as c:
        assert c.get("/api/dags").status_code == 200
    assert seen == ["called"]  # once per request, shared by every dependency that needs the user


# -- overview: runs, budget, chart -----------------------------------------------------------------
def test_runs_api_lists_newest_first_with_generic_counters(client: TestClient) -> None:
    body = client.get("/api/runs").json()
    runs = body["runs"]
    assert [r["run_id"] for r in runs] == [
        "manual__dry",
        "scheduled__o1",
        "scheduled__r3",
        "scheduled__r2",
        "scheduled__r1",
    ]
    r3 = next(r for r in runs if r["run_id"] == "scheduled__r3")
    assert r3["status"] == "success"
    assert r3["api_calls"] == {"salesforce": 120, "leadgen": 30}
    assert r3["counters"]["salesforce"] == {"created": 2, "updated": 6, "failed": 1}
    assert r3["counters"]["links"]["converted"] == 1 and r3["counters"]["links"]["relinked"] == 1
    assert r3["counters"]["leadgen"]["deactivated"] == 1
    assert r3["counters"]["run"]["quarantined"] == 7
    assert r3["counters"]["validation"] == {"checks.emailAddress:format": 1}
    assert "api_calls" not in r3["counters"] and "window" not in r3["counters"]
    assert r3["window"]["start"].endswith("+00:00") and r3["window"]["end"] > r3["window"]["start"]
    # Another DAG's report shape renders without code for it.
    opp = next(r for r in runs if r["dag_id"] == OPPS_DAG)
    assert opp["counters"]["contact_roles"] == {"created": 3, "held": 2}
    assert opp["counters"]["opportunities"]["created"] == 4
    r2 = next(r for r in runs if r["run_id"] == "scheduled__r2")
    assert r2["status"] == "threshold_exceeded" and "rows rejected" in r2["message"]


def test_runs_api_filters_and_limits(client: TestClient) -> None:
    only = client.get("/api/runs", params={"dag_id": OPPS_DAG}).json()["runs"]
    assert [r["run_id"] for r in only] == ["scheduled__o1"]
    assert len(client.get("/api/runs", params={"limit": 2}).json()["runs"]) == 2
    assert client.get("/api/runs", params={"limit": 0}).status_code == 422
    assert client.get("/api/runs", params={"limit": 501}).status_code == 422
    assert client.get("/api/runs", params={"dag_id": "no spaces!"}).status_code == 422


def test_run_detail_has_the_redacted_report_and_404s(client: TestClient) -> None:
    run = client.get(f"/api/runs/{PEOPLE_DAG}/scheduled__r2").json()
    assert run["report"]["salesforce"]["failed"] == 3
    example = run["report"]["quarantine_examples"][0]["message"]
    assert "secretKey=***" in example and "accountID=ACC1" in example
    missing = client.get(f"/api/runs/{PEOPLE_DAG}/nope")
    assert missing.status_code == 404 and "nope" in missing.json()["detail"]


def test_dags_api_summarises_each_dag(client: TestClient, data: HealthData) -> None:
    dags = {d["dag_id"]: d for d in client.get("/api/dags").json()["dags"]}
    assert set(dags) == {PEOPLE_DAG, OPPS_DAG}
    assert dags[PEOPLE_DAG]["last_run"]["run_id"] == "manual__dry"
    assert dags[PEOPLE_DAG]["open_quarantine"] == data.active_quarantine_rows - 1
    assert dags[OPPS_DAG]["open_quarantine"] == 1
    assert dags[OPPS_DAG]["held"] == 2 and dags[PEOPLE_DAG]["held"] == 0
    assert dags[PEOPLE_DAG]["covered_until"] is not None and dags[OPPS_DAG]["covered_until"] is None


def test_budget_counts_the_rolling_24_hours_only(client: TestClient, data: HealthData) -> None:
    b = client.get("/api/budget").json()
    assert b["used"] == data.sf_calls_24h == 120 + 15 + 60  # the 300-call run is 30 h old
    assert b["budget"] == TEST_BUDGET and b["remaining"] == TEST_BUDGET - b["used"]
    assert b["retry_stop_share"] == TEST_RETRY_STOP_SHARE and b["retry_stop_at"] == 750
    assert b["retries_stopped"] is False and b["exhausted"] is False
    assert len(b["daily"]) == 7
    assert sum(d["sf_calls"] for d in b["daily"]) == 40 + 300 + 120 + 15 + 60
    assert sum(d["lg_calls"] for d in b["daily"]) == 12 + 9 + 30 + 4 + 8
    assert sum(d["runs"] for d in b["daily"]) == 5
    assert sum(d["quarantined"] for d in b["daily"]) == 4 + 7 + 1
    assert [d["day"] for d in b["daily"]] == sorted(d["day"] for d in b["daily"])
    assert len(client.get("/api/budget", params={"days": 2}).json()["daily"]) == 2
    assert client.get("/api/budget", params={"days": 0}).status_code == 422
    assert client.get("/api/budget", params={"days": 32}).status_code == 422


def test_budget_flags_retry_stop_and_exhaustion(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_SYNC_SF_API_BUDGET", "200")  # used 195 > 75 % of 200
    b = client.get("/api/budget").json()
    assert (b["retry_stop_at"], b["retries_stopped"], b["exhausted"]) == (150, True, False)
    monkeypatch.setenv("CRM_SYNC_SF_API_BUDGET", "100")
    b = client.get("/api/budget").json()
    assert b["exhausted"] is True and b["remaining"] == 0


def test_overview_page_shows_runs_counts_budget_and_chart(client: TestClient) -> None:
    resp = client.get("/ui/overview")
    assert resp.status_code == 200
    html = resp.text
    assert PEOPLE_DAG in html and OPPS_DAG in html
    assert "threshold_exceeded" in html and "dry_run" in html
    assert "converted 1" in html and "relinked 1" in html and "deactivated 1" in html
    assert "contact_roles:</b> created 3, held 2" in html
    assert "<strong>195</strong> of 1,000 calls used" in html
    assert "750 calls" in html and "75.0 %" in html
    assert html.count("<svg") == 2 and 'class="b-sf_calls"' in html
    assert "2 held" in html
    csp = resp.headers["content-security-policy"]
    assert "script-src 'nonce-" in csp and "frame-ancestors 'self'" in csp
    one = client.get("/ui/overview", params={"dag_id": OPPS_DAG, "runs": 1}).text
    assert f'id="dag-{OPPS_DAG}"' in one and f'id="dag-{PEOPLE_DAG}"' not in one
    assert client.get("/ui/overview", params={"runs": 0}).status_code == 422


# -- quarantine ----------------------------------------------------------------------------------
def test_quarantine_lists_active_rows_grouped_by_category(
    client: TestClient, data: HealthData
) -> None:
    body = client.get("/api/quarantine").json()
    assert body["total"] == data.active_quarantine_rows == 10
    groups = {g["category"]: g for g in body["groups"]}
    assert {c: g["rows"] for c, g in groups.items()} == data.rows_by_category
    assert groups["duplicate"]["records"] == 2
    assert {c["error_code"] for c in groups["duplicate"]["checks"]} == {
        "DUPLICATES_DETECTED",
        "DUPLICATE_VALUE",
    }
    assert body["groups"][0]["category"] == "duplicate"  # largest first
    row = next(i for i in body["items"] if i["id"] == data.quarantine["required"])
    assert row["message"].endswith("Required fields are missing: [LastName]")
    assert row["error_code"] == "REQUIRED_FIELD_MISSING" and row["field"] == "LastName"
    assert row["payload"]["Company"] == "Evans Ltd"
    assert row["status"] == "open" and row["attempts"] == 1
    assert row["first_seen"] and row["last_seen"] >= row["first_seen"]
    parked = next(i for i in body["items"] if i["id"] == data.quarantine["format_parked"])
    assert (parked["status"], parked["attempts"]) == ("parked", 3)
    assert data.quarantine["resolved"] not in {i["id"] for i in body["items"]}


@pytest.mark.parametrize(
    ("params", "names"),
    [
        ({"category": "duplicate"}, {"duplicate_ann", "duplicate_other"}),
        ({"direction": "sf_to_lg"}, {"format_parked", "missing_link"}),
        ({"dag_id": OPPS_DAG}, {"opportunity_other"}),
        ({"status": "parked"}, {"format_parked"}),
        ({"status": "resolved"}, {"resolved"}),
        ({"status": ["parked", "resolved"]}, {"format_parked", "resolved"}),
        ({"dag_id": PEOPLE_DAG, "direction": "sf_to_lg", "category": "format"}, {"format_parked"}),
        ({"category": "", "dag_id": "", "direction": ""}, None),  # an HTML form's "any"
    ],
)
def test_quarantine_filters(
    client: TestClient, data: HealthData, params: dict[str, Any], names: set[str] | None
) -> None:
    body = client.get("/api/quarantine", params=params).json()
    got = {i["id"] for i in body["items"]}
    if names is None:
        assert body["total"] == data.active_quarantine_rows
    else:
        assert got == {data.quarantine[n] for n in names}
        assert body["total"] == len(names)


def test_quarantine_all_statuses_groups_and_paging(client: TestClient, data: HealthData) -> None:
    everything = client.get("/api/quarantine", params={"status": "all"}).json()
    assert everything["total"] == len(data.quarantine) == 11
    page1 = client.get("/api/quarantine", params={"limit": 4}).json()
    page3 = client.get("/api/quarantine", params={"limit": 4, "offset": 8}).json()
    assert len(page1["items"]) == 4 and len(page3["items"]) == 2
    assert not {i["id"] for i in page1["items"]} & {i["id"] for i in page3["items"]}
    groups = client.get("/api/quarantine/groups", params={"direction": "sf_to_lg"}).json()
    assert {g["category"] for g in groups["groups"]} == {"format", "missing link"}
    assert groups["rows"] == 2


@pytest.mark.parametrize(
    "params",
    [
        {"direction": "sideways"},
        {"status": "stuck"},
        {"category": "Robert'); DROP TABLE quarantine;--"},
        {"dag_id": "../../etc"},
        {"limit": 0},
        {"limit": 501},
        {"offset": -1},
    ],
)
def test_quarantine_rejects_malformed_filters(client: TestClient, params: dict[str, Any]) -> None:
    resp = client.get("/api/quarantine", params=params)
    assert resp.status_code == 422
    assert isinstance(resp.json()["detail"], list)
    assert client.get("/api/quarantine.csv", params=params).status_code in (422, 200)


def test_quarantine_item_and_404(client: TestClient, data: HealthData) -> None:
    item = client.get(f"/api/quarantine/{data.quarantine['picklist']}").json()
    assert item["category"] == "picklist" and item["field"] == "Industry"
    missing = client.get("/api/quarantine/999999")
    assert missing.status_code == 404 and missing.json()["detail"] == "no quarantine row 999999"
    assert client.get("/api/quarantine/not-a-number").status_code == 422


def _csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_quarantine_csv_export(client: TestClient, data: HealthData) -> None:
    resp = client.get("/api/quarantine.csv")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/csv")
    assert "attachment" in resp.headers["content-disposition"]
    rows = _csv_rows(resp.text)
    assert len(rows) == data.active_quarantine_rows
    assert list(rows[0])[:4] == ["id", "dag_id", "domain", "direction"]
    by_id = {int(r["id"]): r for r in rows}
    req = by_id[data.quarantine["required"]]
    assert req["category"] == "required field" and req["error_code"] == "REQUIRED_FIELD_MISSING"
    assert json.loads(req["payload"])["Company"] == "Evans Ltd"
    dup = json.loads(by_id[data.quarantine["duplicate_other"]]["payload"])
    assert dup["Email"].startswith("=HYPERLINK")  # inside the JSON cell, which starts with "{"
    only = _csv_rows(client.get("/api/quarantine.csv", params={"category": "duplicate"}).text)
    assert {int(r["id"]) for r in only} == {
        data.quarantine["duplicate_ann"],
        data.quarantine["duplicate_other"],
    }


def test_csv_cells_cannot_become_formulas() -> None:
    from crm_sync.health.deps import csv_cell

    assert csv_cell("=1+1") == "'=1+1"
    assert csv_cell("@SUM(A1)") == "'@SUM(A1)"
    assert csv_cell("plain") == "plain" and csv_cell(None) == ""
    assert csv_cell({"a": 1}) == '{"a": 1}'


# -- retry -----------------------------------------------------------------------------------------
def test_retry_marks_open_and_parked_rows_for_the_next_run(
    client: TestClient, data: HealthData, health_store_url: str
) -> None:
    ids = [data.quarantine[n] for n in ("picklist", "format_parked", "resolved")]
    resp = client.post("/api/quarantine/retry", json={"ids": ids})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["marked"] == 2
    assert sorted(body["ids"]) == sorted(
        [data.quarantine["picklist"], data.quarantine["format_parked"]]
    )
    assert body["unchanged"] == [{"id": data.quarantine["resolved"], "status": "resolved"}]
    parked = client.get(f"/api/quarantine/{data.quarantine['format_parked']}").json()
    assert (parked["status"], parked["attempts"]) == ("retry", 0)
    store = _store(health_store_url)
    try:
        assert "sf:00Q000000000007AAA" in store.retry_keys(PEOPLE_DAG, "sf_to_lg")
    finally:
        store.dispose()
    again = client.post("/api/quarantine/retry", json={"ids": ids[:1]}).json()
    assert again["marked"] == 0 and again["unchanged"][0]["status"] == "retry"
    listed = client.get("/api/quarantine", params={"status": "retry"}).json()
    assert listed["total"] == 2


def test_retry_with_an_unknown_id_changes_nothing(client: TestClient, data: HealthData) -> None:
    known = data.quarantine["permission"]
    resp = client.post("/api/quarantine/retry", json={"ids": [known, 424242]})
    assert resp.status_code == 404
    assert resp.json()["detail"] == {"message": "unknown quarantine ids", "ids": [424242]}
    assert client.get(f"/api/quarantine/{known}").json()["status"] == "open"


@pytest.mark.parametrize(
    "body",
    [{"ids": []}, {"ids": ["x"]}, {"ids": [0]}, {"ids": [1], "all": True}, {}, [1, 2]],
)
def test_retry_rejects_malformed_bodies(client: TestClient, body: Any) -> None:
    assert client.post("/api/quarantine/retry", json=body).status_code == 422


def test_retry_is_guarded_against_csrf(client: TestClient, data: HealthData) -> None:
    rid = data.quarantine["length"]
    form = client.post("/api/quarantine/retry", data={"ids": str(rid)})
    assert form.status_code == 415
    text = client.post(
        "/api/quarantine/retry",
        content=json.dumps({"ids": [rid]}),
        headers={"Content-Type": "text/plain"},
    )
    assert text.status_code == 415
    cross = client.post(
        "/api/quarantine/retry",
        json={"ids": [rid]},
        headers={"Sec-Fetch-Site": "cross-site"},
    )
    assert cross.status_code == 403
    assert client.get(f"/api/quarantine/{rid}").json()["status"] == "open"


def test_retry_needs_edit_rights_on_every_dag_concerned(
    client: TestClient, data: HealthData, edit_allowed: dict[str, bool]
) -> None:
    edit_allowed[OPPS_DAG] = False
    ids = [data.quarantine["opportunity_other"], data.quarantine["length"]]
    resp = client.post("/api/quarantine/retry", json={"ids": ids})
    assert resp.status_code == 403
    assert resp.json()["detail"]["dag_ids"] == [OPPS_DAG]
    assert client.get(f"/api/quarantine/{ids[1]}").json()["status"] == "open"
    ok = client.post("/api/quarantine/retry", json={"ids": ids[1:]})
    assert ok.status_code == 200 and ok.json()["marked"] == 1


def test_quarantine_page_renders_groups_rows_filters_and_controls(
    client: TestClient, data: HealthData
) -> None:
    resp = client.get("/ui/quarantine")
    assert resp.status_code == 200
    html = resp.text
    assert "Required fields are missing: [LastName]" in html
    assert "REQUIRED_FIELD_MISSING" in html and "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST" in html
    assert '<div class="cat">duplicate</div>' in html and '<div class="n">2</div>' in html
    assert "10 rows" in html
    assert 'id="retry"' in html and "../api/quarantine/retry" in html
    assert "../api/quarantine.csv?" in html
    assert 'href="lookup?q=lg%3A1006"' in html
    nonce = resp.headers["content-security-policy"].split("'nonce-")[1].split("'")[0]
    assert f'<script nonce="{nonce}">' in html
    filtered = client.get(
        "/ui/quarantine", params={"category": "picklist", "dag_id": "", "direction": ""}
    ).text
    assert "Space Mining" in filtered and "Required fields are missing" not in filtered
    assert "../api/quarantine.csv?category=picklist" in filtered
    bad = client.get("/ui/quarantine", params={"direction": "up"})
    assert bad.status_code == 422 and "Invalid request" in bad.text


# -- record lookup --------------------------------------------------------------------------------
def lookup(client: TestClient, q: str) -> dict[str, Any]:
    resp = client.get("/api/lookup", params={"q": q})
    assert resp.status_code == 200, f"{q}: {resp.status_code} {resp.text}"
    return resp.json()


def test_lookup_by_email_finds_the_pair_history_values_and_quarantine(
    client: TestClient, data: HealthData
) -> None:
    res = lookup(client, "  ANN.Archer@Example.com ")
    assert res["kind"] == "email"
    [rec] = res["records"]
    assert (rec["lg_id"], rec["sf_object"], rec["sf_id"], rec["status"]) == (
        "1001",
        "Contact",
        "003000000000001AAA",
        "active",
    )
    assert [(e["event"], e["old_sf_id"], e["new_sf_id"]) for e in rec["history"]] == [
        ("created", None, "00Q000000000001AAA"),
        ("converted", "00Q000000000001AAA", "003000000000001AAA"),
    ]
    assert rec["synced_values"]["emailAddress"] == "ann.archer@example.com"
    assert rec["synced_values"]["title"] == "CTO"
    assert [q["id"] for q in rec["quarantine"]] == [data.quarantine["duplicate_ann"]]
    assert res["unlinked_quarantine"] == []


def test_lookup_shows_rows_keyed_by_an_old_salesforce_id(
    client: TestClient, health_store_url: str
) -> None:
    store = _store(health_store_url)
    try:
        old = store.quarantine(
            dag_id=PEOPLE_DAG,
            domain="person",
            direction="sf_to_lg",
            record_key="sf:00Q000000000001AAA",  # Ann's lead, before it was converted
            target_object="lead",
            lg_id=None,
            sf_id="00Q000000000001AAA",
            category="picklist",
            check="leadgen:205",
            field="industry",
            error_code="205",
            message="invalid option",
            payload={},
            run_id="scheduled__r1",
            max_attempts=5,
        )
    finally:
        store.dispose()
    res = lookup(client, "1001")
    assert old.id in [q["id"] for q in res["records"][0]["quarantine"]]
    assert res["unlinked_quarantine"] == []


def test_lookup_by_email_in_a_quarantined_payload_only(
    client: TestClient, data: HealthData
) -> None:
    res = lookup(client, "eve.evans@example.com")
    assert res["records"] == []
    assert [q["id"] for q in res["unlinked_quarantine"]] == [data.quarantine["required"]]


@pytest.mark.parametrize(
    ("q", "lg_id", "status", "events"),
    [
        ("1001", "1001", "active", ["created", "converted"]),
        ("003000000000001AAA", "1001", "active", ["created", "converted"]),
        ("003000000000001", "1001", "active", ["created", "converted"]),  # 15-character id
        ("00Q000000000001AAA", "1001", "active", ["created", "converted"]),  # before conversion
        ("00Q000000000002AAA", "1002", "active", ["paired_by_email", "merged"]),  # merged away
        ("sf:00Q000000000003AAA", "1002", "active", ["paired_by_email", "merged"]),
        ("1003", "1003", "deleted", ["created", "deactivated"]),
        ("1004", "1004", "active", ["created", "relinked"]),
        ("lg:1005", "1005", "removed", ["created", "removed"]),
    ],
)
def test_lookup_by_id_of_either_system(
    client: TestClient, q: str, lg_id: str, status: str, events: list[str]
) -> None:
    res = lookup(client, q)
    assert res["kind"] == "id"
    [rec] = res["records"]
    assert (rec["lg_id"], rec["status"]) == (lg_id, status)
    assert [e["event"] for e in rec["history"]] == events


def test_lookup_relinked_record_keeps_only_new_values(client: TestClient) -> None:
    rec = lookup(client, "dee.dunn@example.com")["records"][0]
    assert rec["sf_id"] == "00Q000000000009AAA"
    assert rec["synced_values"] == {"emailAddress": "dee.dunn@example.com"}
    assert rec["history"][-1]["detail"] == "lead reactivated"


def test_lookup_by_quarantine_record_key(client: TestClient, data: HealthData) -> None:
    res = lookup(client, "sf:00Q000000000007AAA")
    assert [q["id"] for q in res["unlinked_quarantine"]] == [data.quarantine["format_parked"]]
    # A prefix limits the search to one system: 1001 is a Lead Gen & CRM id, not a Salesforce one.
    assert lookup(client, "lg:1001")["records"][0]["lg_id"] == "1001"
    sided = client.get("/api/lookup", params={"q": "sf:1001"})
    assert sided.status_code == 404


@pytest.mark.parametrize("q", ["nobody@example.com", "99999", "ann_archer@example.com"])
def test_lookup_unknown_is_404(client: TestClient, q: str) -> None:
    resp = client.get("/api/lookup", params={"q": q})
    assert resp.status_code == 404
    assert "no record matches" in resp.json()["detail"]


@pytest.mark.parametrize(
    "q", ["", "   ", "a b", "x@", "'; drop table links; --", "é" * 10, "1" * 400]
)
def test_lookup_malformed_is_422(client: TestClient, q: str) -> None:
    resp = client.get("/api/lookup", params={"q": q})
    assert resp.status_code == 422


def test_lookup_page_renders_pair_history_and_quarantine(client: TestClient) -> None:
    html = client.get("/ui/lookup", params={"q": "ann.archer@example.com"}).text
    assert "Lead Gen &amp; CRM 1001 ⇄" in html and "Salesforce Contact 003000000000001AAA" in html
    assert "converted" in html and "00Q000000000001AAA converted to 003000000000001AAA" in html
    assert "Use one of these records?" in html and "DUPLICATES_DETECTED" in html
    assert "Archer &amp; Co" in html  # values escaped, not raw HTML
    empty = client.get("/ui/lookup")
    assert empty.status_code == 200 and "Find a record by email" in empty.text
    none = client.get("/ui/lookup", params={"q": "nobody@example.com"})
    assert none.status_code == 404 and "No record matches" in none.text
    bad = client.get("/ui/lookup", params={"q": "a b"})
    assert bad.status_code == 422 and 'id="lookup-error"' in bad.text


# -- secrets ---------------------------------------------------------------------------------------
def test_no_output_shows_a_secret(client: TestClient, data: HealthData) -> None:
    urls = [
        "/api/dags",
        "/api/runs",
        f"/api/runs/{PEOPLE_DAG}/scheduled__r2",
        "/api/budget",
        "/api/held",
        "/api/quarantine?status=all",
        "/api/quarantine/groups",
        "/api/quarantine.csv?status=all",
        f"/api/quarantine/{data.quarantine['duplicate_ann']}",
        f"/api/quarantine/{data.quarantine['required']}",
        "/api/lookup?q=ann.archer@example.com",
        "/api/lookup?q=eve.evans@example.com",
        "/api/lookup?q=sf:00Q000000000007AAA",
        "/ui/overview",
        "/ui/quarantine?status=all",
        "/ui/lookup?q=ann.archer@example.com",
        "/ui/lookup?q=eve.evans@example.com",
    ]
    for url in urls:
        resp = client.get(url)
        assert resp.status_code == 200, url
        assert SECRET_MARK not in resp.text, f"{url} shows a secret"
    dup = client.get(f"/api/quarantine/{data.quarantine['duplicate_ann']}").json()
    assert dup["payload"] == {"Email": "ann.archer@example.com", "secretKey": "***"}
    assert "secretKey=***" in dup["message"] and "accountID=ACC1" in dup["message"]
    req = client.get(f"/api/quarantine/{data.quarantine['required']}").json()
    assert req["payload"]["LeadGen_URL__c"] == (
        "https://app.sharpspring.com/Contacts/View/1006?secretKey=***"
    )
    held = client.get("/api/held").json()["items"]
    assert held[0]["payload"] == {"role": "Decision Maker", "sessionId": "***"}
    ann = lookup(client, "ann.archer@example.com")["records"][0]
    assert (
        ann["synced_values"]["website"]
        == "https://archer.example.com/welcome?ref=crm&secretKey=***"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"password": "p", "Password": "p", "secretKey": "s", "api_key": "k"}, "all-masked"),
        ({"nested": [{"accessToken": "t"}, {"session_id": "s"}]}, "all-masked"),
        ("see https://h.example/x?a=1&token=abc&b=2", "see https://h.example/x?a=1&token=***&b=2"),
        ("call failed: secretKey=abc&accountID=1", "call failed: secretKey=***&accountID=1"),
        (
            "GET https://h.example/cb?apiSecret=abc&x=1 failed",
            "GET https://h.example/cb?apiSecret=***&x=1 failed",
        ),
        ("Authorization: Bearer abc.def", "Authorization: Bearer ***"),
        ("refresh with api_key=xyz now", "refresh with api_key=*** now"),
        ("https://ex.example/a b?q=one two", "https://ex.example/a b?q=one two"),
        ("https://ex.example/p?q=%20x&r=1", "https://ex.example/p?q=%20x&r=1"),  # as stored
        ({"Email": "a@b.example", "title": "token economics"}, "unchanged"),
    ],
)
def test_redaction_rules(value: Any, expected: str) -> None:
    out = present.redact(value)
    if expected == "all-masked":
        flat = json.dumps(out)
        for secret in ('"p"', '"s"', '"k"', '"t"'):
            assert secret not in flat
        assert "***" in flat
    elif expected == "unchanged":
        assert out == value
    else:
        assert out == expected


# -- store resolution and robustness ---------------------------------------------------------------
def test_store_from_the_sync_state_connection(
    seeded: tuple[str, HealthData], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = seeded
    path = url.removeprefix("sqlite:///")
    # As the api-server sees it: an Airflow connection in the environment (absolute path).
    monkeypatch.setenv("AIRFLOW_CONN_SYNC_STATE", f"sqlite:///{path}")
    application = create_app()
    application.dependency_overrides[get_user] = lambda: FakeUser()
    application.dependency_overrides[dag_trigger_check] = lambda: lambda dag_id: True
    try:
        with TestClient(application) as c:
            runs = c.get("/api/runs").json()["runs"]
        assert len(runs) == 5
        assert application.state.store_provider.url() == f"sqlite:///{path}"
    finally:
        application.state.store_provider.dispose()


def test_store_defaults_to_the_dags_default_without_a_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from crm_sync.health.source import StoreProvider

    monkeypatch.delenv("AIRFLOW_CONN_SYNC_STATE", raising=False)
    provider = StoreProvider(resolver=lambda: default_state_url())
    assert provider.url() == default_state_url()


def test_missing_store_answers_503_without_crashing(tmp_path: Any) -> None:
    application = create_app(state_url=f"sqlite:///{tmp_path}/no/such/dir/state.db")
    application.dependency_overrides[get_user] = lambda: FakeUser()
    application.dependency_overrides[dag_trigger_check] = lambda: lambda dag_id: True
    with TestClient(application) as c:
        api = c.get("/api/runs")
        assert api.status_code == 503 and "cannot open the state store" in api.json()["detail"]
        page = c.get("/ui/overview")
        assert page.status_code == 503 and "State store unavailable" in page.text
        # The app keeps serving (and would open the store once it exists).
        assert c.get("/api/runs").status_code == 503


def test_empty_store_renders_every_page(tmp_path: Any) -> None:
    application = create_app(state_url=f"sqlite:///{tmp_path}/empty.db")
    application.dependency_overrides[get_user] = lambda: FakeUser()
    application.dependency_overrides[dag_trigger_check] = lambda: lambda dag_id: True
    try:
        with TestClient(application) as c:
            assert "No sync runs recorded yet" in c.get("/ui/overview").text
            assert "Nothing in quarantine" in c.get("/ui/quarantine").text
            assert c.get("/ui/lookup").status_code == 200
            assert c.get("/api/budget").json()["used"] == 0
            assert c.get("/api/quarantine").json() == {
                "total": 0,
                "limit": 100,
                "offset": 0,
                "filters": {
                    "dag_id": None,
                    "category": None,
                    "direction": None,
                    "status": ["open", "parked", "retry"],
                },
                "groups": [],
                "items": [],
            }
            assert c.get("/api/quarantine.csv").text.startswith("id,dag_id,")
    finally:
        application.state.store_provider.dispose()


# -- the plugin ------------------------------------------------------------------------------------
def test_plugin_mounts_the_app_and_adds_browse_entries() -> None:
    import sync_health_plugin

    plugin = sync_health_plugin.SyncHealthPlugin
    [entry] = plugin.fastapi_apps
    assert entry["url_prefix"] == "/crm-sync" and entry["name"] == "Sync health"
    reserved = ("/api/v2", "/ui", "/execution", "/auth", "/pluginsv2")
    assert not entry["url_prefix"].startswith(reserved)
    views = plugin.external_views
    assert [v["href"] for v in views] == [
        "/crm-sync/ui/overview",
        "/crm-sync/ui/quarantine",
        "/crm-sync/ui/lookup",
    ]
    assert {v["category"] for v in views} == {"browse"} and all(v["url_route"] for v in views)
    # The hrefs are routes of the app, and they need a login.
    with TestClient(entry["app"]) as c:
        for v in views:
            resp = c.get(v["href"].removeprefix("/crm-sync"))
            assert resp.status_code == 401


def test_lazy_app_is_built_on_the_first_request_only() -> None:
    built: list[int] = []

    def factory() -> FastAPI:
        built.append(1)
        inner = FastAPI()

        @inner.get("/ping")
        def ping() -> dict[str, str]:
            return {"pong": "yes"}

        return inner

    lazy = LazyASGIApp(factory)
    assert built == []
    with TestClient(lazy) as c:
        assert c.get("/ping").json() == {"pong": "yes"}
        assert c.get("/ping").status_code == 200
    assert built == [1]
