"""The bad-input catalogue end to end (issue 15): every case of ``tests/fixtures/bad_inputs.yaml``
is seeded into the sandboxes through their admin APIs, next to a control group of good records;
one run of ``sync_leads_contacts`` must end with every case as the catalogue says (synced with
the exact values on the other side, or quarantined with its category and reason, or reported),
the control group synced and the run green; a full resync must then write nothing at all (no
cleaned value may look like a change) and quarantine nothing new.

The problems of all cases are collected and reported together, so one run shows every case that
does not hold.
"""

from __future__ import annotations

import shutil
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import REPO_MAPPINGS
from tests.e2e.helpers import (
    H,
    at,
    freeze,
    lg_at,
    lg_client,
    reset_calls,
    run_dag,
    state_store,
    write_calls,
)

pytestmark = pytest.mark.e2e

DAG = "sync_leads_contacts"
REPO = Path(__file__).resolve().parents[2]
CATALOGUE = REPO / "tests" / "fixtures" / "bad_inputs.yaml"
DOMAIN = "bad-inputs.example"
H2 = H + timedelta(hours=1)
CONTROL = 12  # good records per side in the control group

# (Lead Gen & CRM label, its dataType, Salesforce field, the Salesforce field's definition)
CUSTOM_FIELDS = [
    ("Budget", "string", "Budget__c", {"type": "currency", "precision": 16, "scale": 2}),
    ("Headcount", "string", "Headcount__c", {"type": "int", "precision": 8}),
    ("First Touch", "date", "First_Touch__c", {"type": "date"}),
    ("Last Touch", "datetime", "Last_Touch__c", {"type": "datetime"}),
    ("Consent", "checkbox", "Consent__c", {"type": "boolean"}),
    ("Notes", "textarea", "Notes__c", {"type": "textarea", "length": 131072}),
    ("Summary", "textarea", "Summary__c", {"type": "textarea", "length": 32000}),
    (
        "Region",
        "string",
        "Region__c",
        {
            "type": "picklist",
            "picklistValues": ["North America", "EMEA", "APAC", "LATAM"],
            "restricted": True,
        },
    ),
]


# -- the catalogue ----------------------------------------------------------------------------


@dataclass
class Record:
    """One record to seed: a case's own, an ``existing`` counterpart or an ``also`` sibling."""

    case: str
    role: str  # "case" | "existing" | "also"
    side: str  # "leadgen" | "salesforce"
    obj: str  # the Salesforce object (for a lead: the one it stands for)
    values: dict[str, Any]
    minutes: int = 40
    typed_in_ui: bool = False
    expect: dict[str, Any] = field(default_factory=dict)
    rid: str | None = None  # the id it got


@dataclass
class Case:
    id: str
    family: str
    data: dict[str, Any]

    @property
    def side(self) -> str:
        return str(self.data["side"])

    @property
    def expected(self) -> dict[str, Any]:
        """The outcome checked: the desired one, or today's where a gap is recorded."""
        return {**self.data, **self.data["today"]} if "today" in self.data else self.data


def load_catalogue() -> tuple[dict[str, Any], list[Case]]:
    doc = yaml.safe_load(CATALOGUE.read_text(encoding="utf-8"))
    cases = [
        Case(c["id"], family, c) for family, body in doc["families"].items() for c in body["cases"]
    ]
    return doc, cases


def text(value: Any) -> Any:
    """A catalogue value: ``{repeat, times}`` expands, anything else is taken as written."""
    if isinstance(value, dict) and "repeat" in value:
        return str(value["repeat"]) * int(value["times"])
    return value


def field_name(key: str, names: dict[str, str]) -> str:
    """``<Label>`` -> the Lead Gen & CRM systemName of that custom field."""
    return names[key[1:-1]] if key.startswith("<") else key


def resolved(values: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    return {field_name(k, names): text(v) for k, v in (values or {}).items()}


def email_of(case_id: str, n: int = 0) -> str:
    return f"{case_id}{'-' + str(n) if n else ''}@{DOMAIN}"


def lg_defaults(email: str, obj: str) -> dict[str, Any]:
    out = {"emailAddress": email, "lastName": "Case", "companyName": "Bad Inputs Inc"}
    if obj == "Contact":
        out["leadStatus"] = "contact"
    return out


def sf_defaults(email: str, obj: str) -> dict[str, Any]:
    out = {"Email": email, "LastName": "Case"}
    if obj == "Lead":
        out["Company"] = "Bad Inputs Inc"
    return out


def records_of(case: Case, names: dict[str, str]) -> list[Record]:
    """The case's own record, its siblings (``also``) and its counterparts (``existing``)."""
    d, other = case.data, "salesforce" if case.side == "leadgen" else "leadgen"
    out = [
        Record(
            case.id,
            "case",
            case.side,
            d.get("object", "Lead"),
            resolved(d.get("set"), names),
            int(d.get("minutes", 40)),
            bool(d.get("typed_in_ui")),
            case.expected,
        )
    ]
    for i, item in enumerate(d.get("also") or [], 1):
        out.append(
            Record(
                case.id,
                "also",
                case.side,
                item.get("object", "Lead"),
                resolved(item.get("set"), names),
                int(item.get("minutes", 40)),
                expect=item,
            )
        )
        out[-1].values.setdefault("__email", email_of(case.id, i))
    for item in d.get("existing") or []:
        out.append(
            Record(
                case.id,
                "existing",
                other,
                item.get("object", "Lead"),
                resolved(item.get("set"), names),
                int(item.get("minutes", 40)),
            )
        )
        out[-1].values.setdefault("__email", email_of(case.id))  # the case's own address
    return out


def payload(rec: Record) -> dict[str, Any]:
    """The record as its system's admin API takes it: defaults, then the case's values."""
    values = dict(rec.values)
    email = values.pop("__email", email_of(rec.case))
    base = lg_defaults(email, rec.obj) if rec.side == "leadgen" else sf_defaults(email, rec.obj)
    return {**base, **values}


# -- the setup: extra fields on both sides, a spec that maps them --------------------------


@pytest.fixture
def bad_setup(fresh, tmp_path, monkeypatch) -> dict[str, str]:
    """Custom fields of every type on both sides, mapped two-way on Leads and Contacts; returns
    Lead Gen & CRM label -> systemName."""
    for _label, _lg_type, sf_name, spec in CUSTOM_FIELDS:
        for sobject in ("Lead", "Contact"):
            fresh.sf.post("schema/fields", {"object": sobject, "name": sf_name, **spec})
    lg = lg_client()
    lg.create_fields(
        [
            {"relationship": "lead", "label": label, "dataType": lg_type}
            for label, lg_type, _sf, _spec in CUSTOM_FIELDS
        ]
    )
    labels = {label for label, *_ in CUSTOM_FIELDS}
    names = {f["label"]: f["systemName"] for f in lg.get_fields() if f.get("label") in labels}
    mappings = tmp_path / "mappings"
    shutil.copytree(REPO_MAPPINGS, mappings)
    rows = "".join(
        f"  - {{leadgen: {names[label]}, salesforce: {sf_name}, direction: two-way}}\n"
        for label, _t, sf_name, _s in CUSTOM_FIELDS
    )
    for spec in ("leads.yaml", "contacts.yaml"):
        path = mappings / spec
        path.write_text(path.read_text() + rows)
    monkeypatch.setenv("CRM_SYNC_MAPPINGS_DIR", str(mappings))
    return names


def seed(fresh: Any, records: list[Record]) -> None:
    """Every record through the admin APIs: leads by the Import Tool (then the UI edits),
    Salesforce records in one all-or-none batch per object and minute."""
    lg_groups: dict[int, list[Record]] = {}
    sf_groups: dict[tuple[str, int], list[Record]] = {}
    for r in records:
        if r.side == "leadgen":
            lg_groups.setdefault(r.minutes, []).append(r)
        else:
            sf_groups.setdefault((r.obj, r.minutes), []).append(r)
    for minutes, group in lg_groups.items():
        rows = [
            {k: v for k, v in payload(r).items() if not (r.typed_in_ui and k in r.values)}
            for r in group
        ]
        out = fresh.lg.post("import", {"leads": rows, "_at": lg_at(minutes)})["results"]
        for r, res in zip(group, out, strict=True):
            assert res["success"], f"seeding lead of {r.case}: {res['error']}"
            r.rid = str(res["leadID"])
            if r.typed_in_ui:
                fresh.lg.post(
                    f"leads/{r.rid}",
                    {"fields": r.values, "typed_in_ui": True, "_at": lg_at(minutes)},
                )
    for (sobject, minutes), group in sf_groups.items():
        body = {"records": [payload(r) for r in group], "_at": at(minutes)}
        r = fresh.sf.post(f"records/{sobject}", body)
        for rec, sf_id in zip(group, r["ids"], strict=True):
            rec.rid = sf_id


def control_group(n: int) -> list[Record]:
    good = []
    for i in range(n):
        good.append(
            Record(
                f"control-lg-{i}",
                "case",
                "leadgen",
                "Contact" if i % 3 == 0 else "Lead",
                {"firstName": "Good", "title": f"Control {i}"},
                expect={
                    "expect": "synced",
                    "other": {"FirstName": "Good", "Title": f"Control {i}"},
                },
            )
        )
        good.append(
            Record(
                f"control-sf-{i}",
                "case",
                "salesforce",
                "Contact" if i % 3 == 0 else "Lead",
                {"FirstName": "Fine", "Title": f"Control {i}"},
                expect={
                    "expect": "synced",
                    "other": {"firstName": "Fine", "title": f"Control {i}"},
                },
            )
        )
    return good


# -- checking ---------------------------------------------------------------------------------


@dataclass
class World:
    """Both sandboxes and the state store after a run, read once."""

    fresh: Any
    names: dict[str, str]
    records: list[Record]
    report: dict[str, Any]
    lg_links: dict[str, Any] = field(default_factory=dict)
    sf_links: dict[str, list[Any]] = field(default_factory=dict)
    quarantine: dict[str, Any] = field(default_factory=dict)
    leads: dict[str, dict[str, Any]] = field(default_factory=dict)
    _sf: dict[str, dict[str, Any]] = field(default_factory=dict)

    def load(self) -> World:
        store = state_store()
        lg_ids = [r.rid for r in self.records if r.side == "leadgen"]
        sf_ids = [r.rid for r in self.records if r.side == "salesforce"]
        self.lg_links = store.links_by_lg("person", lg_ids)
        self.sf_links = store.links_by_sf("person", sf_ids, active_only=True)
        self.quarantine = {q.record_key: q for q in store.quarantined(DAG)}
        wanted = set(lg_ids) | {lk.lg_id for lks in self.sf_links.values() for lk in lks}
        self.leads = {str(r["id"]): r for r in lg_client().get_leads_by_ids(sorted(wanted))}
        return self

    def sf(self, sobject: str, sf_id: str) -> dict[str, Any]:
        if sf_id not in self._sf:
            self._sf[sf_id] = self.fresh.sf.get(f"records/{sobject}/{sf_id}")
        return self._sf[sf_id]

    def counterpart(self, rec: Record) -> tuple[str | None, str | None]:
        """(lg id, sf id) of the active link of ``rec``, if any."""
        if rec.side == "leadgen":
            link = self.lg_links.get(rec.rid)
            if link is None or link.status != "active":
                return None, None
            return link.lg_id, link.sf_id
        links = self.sf_links.get(rec.rid) or []
        return (links[0].lg_id, links[0].sf_id) if links else (None, None)


def same(expected: Any, got: Any) -> bool:
    if expected is None:
        return got in (None, "")
    return bool(expected == got)


def shown(v: Any) -> str:
    s = repr(v)
    return s if len(s) <= 90 else s[:60] + f"...({len(v) if isinstance(v, str) else '?'} chars)"


def compare(
    where: str, values: dict[str, Any], actual: dict[str, Any], w: World, lg_id: str | None
) -> list[str]:
    out = []
    for key, want in values.items():
        name = field_name(key, w.names)
        want = lg_id if want == "$lg_id" else text(want)
        got = actual.get(name)
        if not same(want, got):
            out.append(f"{where} {name}: expected {shown(want)}, got {shown(got)}")
    return out


def check_synced(rec: Record, exp: dict[str, Any], w: World, existing: list[Record]) -> list[str]:
    lg_id, sf_id = w.counterpart(rec)
    if lg_id is None:
        q = w.quarantine.get(f"{'lg' if rec.side == 'leadgen' else 'sf'}:{rec.rid}")
        return [f"not synced ({q.category}: {q.message[:300]})" if q else "not synced (no link)"]
    problems = []
    other_id = sf_id if rec.side == "leadgen" else lg_id
    pairs = exp.get("pairs")
    if pairs == "none" and other_id in {e.rid for e in existing}:
        problems.append(f"paired with an existing record {other_id}; expected a new one")
    elif isinstance(pairs, int) and other_id != existing[pairs].rid:
        problems.append(f"linked to {other_id}, expected existing[{pairs}] {existing[pairs].rid}")
    sf_obj = "Contact" if sf_id.startswith("003") else "Lead"
    lg_rec, sf_rec = w.leads.get(lg_id, {}), w.sf(sf_obj, sf_id)
    theirs, mine = (sf_rec, lg_rec) if rec.side == "leadgen" else (lg_rec, sf_rec)
    problems += compare("other side", exp.get("other") or {}, theirs, w, lg_id)
    problems += compare("own record", exp.get("source") or {}, mine, w, lg_id)
    return problems


def check_quarantined(rec: Record, exp: dict[str, Any], w: World) -> list[str]:
    key = f"{'lg' if rec.side == 'leadgen' else 'sf'}:{rec.rid}"
    q = w.quarantine.get(key)
    if q is None:
        lg_id, sf_id = w.counterpart(rec)
        return [f"not quarantined (linked {lg_id} <-> {sf_id})"]
    want = exp["quarantine"]
    problems = []
    if q.category != want["category"]:
        problems.append(f"category {q.category!r}, expected {want['category']!r}: {q.message}")
    if want.get("field") and q.field != field_name(want["field"], w.names):
        problems.append(f"field {q.field!r}, expected {want['field']!r}: {q.message}")
    for words in want.get("reason") or []:
        if words not in q.message:
            problems.append(f"reason lacks {words!r}: {q.message[:400]}")
    if rec.rid not in q.message:
        problems.append(f"reason does not name the record {rec.rid}: {q.message[:200]}")
    if w.counterpart(rec)[0] is not None:
        problems.append("quarantined and yet linked")
    return problems


def check_record(rec: Record, w: World, existing: list[Record]) -> list[str]:
    exp = rec.expect
    outcome = exp.get("expect")
    if outcome == "synced":
        return check_synced(rec, exp, w, existing)
    if outcome == "quarantined":
        return check_quarantined(rec, exp, w)
    if outcome == "reported":
        lg_id, _ = w.counterpart(rec)
        found = w.report.get("events", {}).get(exp["event"], 0)
        return (["reported yet linked"] if lg_id else []) + (
            [f"no {exp['event']} event in the report"] if not found else []
        )
    return [f"unknown outcome {outcome!r}"]


def check_all(w: World) -> list[str]:
    problems = []
    by_case: dict[str, list[Record]] = {}
    for r in w.records:
        by_case.setdefault(r.case, []).append(r)
    for case_id, recs in by_case.items():
        existing = [r for r in recs if r.role == "existing"]
        for r in recs:
            if r.role == "existing":
                continue
            for p in check_record(r, w, existing):
                problems.append(
                    f"{case_id} [{r.side} {r.rid}{' ' + r.role if r.role != 'case' else ''}]: {p}"
                )
    return problems


def expected_events(cases: list[Case]) -> Counter:
    """How many records each event must be reported for, at least."""
    need: Counter = Counter()
    for c in cases:
        exp = c.expected
        if exp.get("event"):
            need[exp["event"]] += 1
        for item in exp.get("also") or []:
            if item.get("event"):
                need[item["event"]] += 1
    return need


def health_pages_show_the_bad_input_safely() -> list[str]:
    """The Sync health pages and API over this store (quarantine rows holding script text, NUL,
    100,000-character payloads) answer, and show script text escaped."""
    import os

    from airflow.api_fastapi.core_api.security import get_user
    from fastapi.testclient import TestClient

    from crm_sync.health.app import create_app, dag_edit_check

    app = create_app(state_url=os.environ["AIRFLOW_CONN_SYNC_STATE"])
    app.dependency_overrides[get_user] = lambda: type("U", (), {"get_name": lambda s: "admin"})()
    app.dependency_overrides[dag_edit_check] = lambda: lambda dag_id: True
    problems = []
    try:
        with TestClient(app) as c:
            pages = ["/ui/overview", "/ui/quarantine", "/api/quarantine", "/api/quarantine.csv"]
            pages += [f"/api/quarantine/{q.id}" for q in state_store().quarantined(DAG)]
            for page in pages:
                r = c.get(page, params={"dag_id": DAG} if "?" not in page else None)
                if r.status_code != 200:
                    problems.append(f"health page {page}: HTTP {r.status_code}")
                elif page.startswith("/ui/") and "<script>alert(1)" in r.text:
                    problems.append(f"health page {page} shows script text unescaped")
    finally:
        app.state.store_provider.dispose()
    return problems


# -- the tests --------------------------------------------------------------------------------


def test_the_catalogue_covers_every_family_the_issue_names() -> None:
    doc, cases = load_catalogue()
    assert len(cases) >= 200, len(cases)
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids)), [i for i, n in Counter(ids).items() if n > 1]
    assert set(doc["families"]) >= {
        "unicode", "email", "quotes", "wrong_ids", "html", "control", "long_text", "dates",
        "numbers", "booleans", "picklists", "blanks", "duplicates",
    }  # fmt: skip
    docs = (REPO / "docs" / "reliability.md").read_text(encoding="utf-8")
    for family, body in doc["families"].items():
        assert body["rule"].strip(), family
        assert f"`{family}`" in docs, f"docs/reliability.md does not describe the family {family}"
    for c in cases:
        assert c.side in ("leadgen", "salesforce"), c.id
        assert c.data["expect"] in ("synced", "quarantined", "reported"), c.id
        if c.data["expect"] == "quarantined":
            assert c.data["quarantine"]["category"] and c.data["quarantine"]["reason"], c.id
        if "today" in c.data:
            assert c.data["today"].get("gap"), f"{c.id}: a gap says what must change, and where"
    directions = Counter((c.side, c.data["expect"]) for c in cases)
    assert all(directions[(side, "synced")] >= 40 for side in ("leadgen", "salesforce"))


def test_every_bad_input_syncs_faithfully_or_is_quarantined_and_nothing_else_suffers(
    fresh, dags, bad_setup
) -> None:
    names = bad_setup
    _doc, cases = load_catalogue()
    records = [r for c in cases for r in records_of(c, names)] + control_group(CONTROL)
    freeze(fresh, 40)
    seed(fresh, records)

    first = run_dag(dags, DAG, H, conf={"max_reject_rate": 1.0})
    assert first.state == "success", first.task_states
    report = first.report
    world = World(fresh, names, records, report).load()
    problems = check_all(world)

    # the run report adds up: every extracted record has exactly one outcome
    assert report["pairs"] == (
        report["loaded_rows"]
        + report["unchanged"]
        + report["rejected_rows"]
        + report["still_quarantined_rows"]
        + sum(report["rows"].get(k, 0) for k in ("deferred", "would_write", "held", "skipped"))
    ), report["rows"]
    quarantined = [r for r in records if r.expect.get("expect") == "quarantined"]
    if report["rejected_rows"] != len(quarantined):
        problems.append(f"{report['rejected_rows']} rows rejected, {len(quarantined)} expected")
    for event, n in expected_events(cases).items():
        if report["events"].get(event, 0) < n:
            problems.append(f"{n} records must be reported as {event}: {report['events']}")

    # a full resync of everything: nothing differs any more, so nothing is written
    reset_calls(fresh)
    freeze(fresh, 40, H2)
    second = run_dag(dags, DAG, H2, conf={"max_reject_rate": 1.0, "full_resync": True})
    assert second.state == "success", second.task_states
    writes = write_calls(fresh)
    plans = second.report
    if writes != {"salesforce": {}, "leadgen": {}}:
        problems.append(
            f"the full resync wrote {writes}: salesforce {plans['salesforce']}, "
            f"leadgen {plans['leadgen']}, conflicts {plans['events'].get('conflict')}"
        )
    if second.report["rejected_rows"]:
        problems.append(f"the resync quarantined more: {second.report['quarantine_examples']}")
    if second.report["still_quarantined_rows"] != len(quarantined):
        problems.append(f"{second.report['still_quarantined_rows']} rows still quarantined")
    if {q.attempts for q in state_store().quarantined(DAG)} != {2}:
        problems.append("every quarantined row must have been retried once by the resync")
    problems += health_pages_show_the_bad_input_safely()
    gaps = [f"{c.id}: {c.data['today']['gap']}" for c in cases if "today" in c.data]
    assert not problems, (
        f"{len(problems)} problems:\n"
        + "\n".join(problems)
        + ("\nknown gaps:\n" + "\n".join(gaps) if gaps else "")
    )
