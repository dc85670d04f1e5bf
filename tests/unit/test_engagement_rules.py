"""Engagement rules: event identity, first click, templates, Task payloads, spec checks, the
quality gate and the load stage's exactly-once decisions (with an in-process fake Salesforce)."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from crm_sync.clients.results import RecordError, WriteResult
from crm_sync.domains.engagement import events, load, rules, validate
from crm_sync.domains.engagement import spec as spec_module
from crm_sync.mapping.models import EngagementSpec
from crm_sync.mapping.schema import LiveSchema
from crm_sync.pipeline.context import RunContext

pytestmark = pytest.mark.unit

# The domain's functions under test, by the module that owns each rule.
eng = SimpleNamespace(
    EVENT_TYPES=rules.EVENT_TYPES,
    normalize_event=events.normalize_event,
    task_key=events.task_key,
    first_per_task=events.first_per_task,
    first_click_orders=events.first_click_orders,
    render_template=events.render_template,
    template_names=events.template_names,
    build_task=events.build_task,
    build_description=events.build_description,
    pick_owner=events.pick_owner,
    load_spec=spec_module.load_spec,
    run_spec=spec_module.run_spec,
    check_spec=spec_module.check_spec,
    check_spec_against_schema=spec_module.check_spec_against_schema,
    validate_tasks=validate.validate_tasks,
    load_stage=load.load_tasks,
)


def spec(**events: Any) -> EngagementSpec:
    base = {
        "form_submission": {"subject": "Form submitted: {formName}", "description": ["url"]},
        "email_send": {"subject": "Sent: {subject}", "type": "Email"},
        "email_open": {"subject": "Opened: {subject}", "type": "Email"},
        "email_click": {"subject": "Clicked: {subject}", "description": ["url", "subject"]},
        "page_visit": {"subject": "Visited page: {page}", "description": ["url", "referrer"]},
    }
    base.update(events)
    return EngagementSpec.model_validate({"version": 1, "events": base})


def event(eid: str, etype: str, at: str = "2026-11-20 09:30:00", lead: str = "7", **data: str):
    return {"id": eid, "type": etype, "lead_id": lead, "at": at, "name": "", "data": data}


def task_schema(**overrides: dict[str, Any]) -> LiveSchema:
    def f(name: str, type_: str = "string", length: int = 255, **kw: Any) -> dict[str, Any]:
        return {"name": name, "type": type_, "length": length, "createable": True, **kw}

    fields = {
        "WhoId": f("WhoId", "reference", 18),
        "OwnerId": f("OwnerId", "reference", 18),
        "Subject": f("Subject", "combobox", 255),
        "ActivityDate": f("ActivityDate", "date", 0),
        "Status": f("Status", "picklist", picklistValues=[{"value": "Completed"}]),
        "Priority": f("Priority", "picklist", picklistValues=[{"value": "Normal"}]),
        "Type": f("Type", "picklist", picklistValues=[{"value": "Email"}, {"value": "Other"}]),
        "TaskSubtype": f(
            "TaskSubtype",
            "picklist",
            restrictedPicklist=True,
            picklistValues=[{"value": "Task"}, {"value": "Email"}],
        ),
        "Description": f("Description", "textarea", 32000),
        "CompletedDateTime": f("CompletedDateTime", "datetime", 0, createable=False),
        "LeadGen_Event_Id__c": f("LeadGen_Event_Id__c", "string", 80, externalId=True),
    }
    for name, changes in overrides.items():
        fields[name] = {**fields[name], **changes}
    schema = LiveSchema()
    schema.add_salesforce_describe("Task", {"fields": list(fields.values())})
    return schema


# -- identity and the first-click rule --------------------------------------------------


def test_task_key_is_the_event_id_except_for_clicks_which_key_on_lead_and_email_send() -> None:
    assert eng.task_key(event("960000000251", "email_open", emailJobID="5")) == (
        "LG-EVT-960000000251"
    )
    assert eng.task_key(event("12", "email_click", lead="7", emailJobID="5")) == "LG-CLICK-7-5"
    assert eng.task_key(event("13", "email_click", lead="7", emailJobID="5")) == "LG-CLICK-7-5"
    # a click whose eventData lost its job id cannot be grouped: it keeps its own identity
    assert eng.task_key(event("14", "email_click", lead="7")) == "LG-EVT-14"


def test_first_click_per_lead_and_email_is_the_lowest_timestamp_then_id() -> None:
    clicks = [
        event("30", "email_click", "2026-11-20 09:40:00", emailJobID="5"),
        event("10", "email_click", "2026-11-20 09:20:00", emailJobID="5"),
        event("9", "email_click", "2026-11-20 09:20:00", emailJobID="5"),  # same second, lower id
        event("11", "email_click", "2026-11-20 09:50:00", emailJobID="6"),  # another email send
        event("12", "email_click", "2026-11-20 09:10:00", lead="8", emailJobID="5"),  # another lead
        event("1", "email_open", "2026-11-20 09:00:00", emailJobID="5"),
        event("2", "email_open", "2026-11-20 09:00:01", emailJobID="5"),  # opens are not grouped
    ]
    kept, superseded = eng.first_per_task(clicks)
    assert [e["id"] for e in kept] == ["9", "11", "12", "1", "2"]
    assert [e["id"] for e in superseded] == ["30", "10"]


def test_ids_compare_as_numbers_not_text() -> None:
    a = event("9", "email_click", emailJobID="5")
    b = event("10", "email_click", emailJobID="5")
    assert eng.first_click_orders([b, a])["LG-CLICK-7-5"][2] == "9"


def test_normalize_event_parses_event_data_and_skips_other_sources() -> None:
    raw = {
        "id": 960000000300,
        "leadID": "7",
        "eventName": "Lead clicked from an email.",
        "eventData": "{'emailID': 3, 'emailJobID': 5, 'subject': 'Hi', 'url': 'https://x.example/a'}",
        "eventSource": "emailClick",
        "createTimestamp": "2026-11-20 09:30:00",
    }
    ev = eng.normalize_event(raw)
    assert ev == {
        "id": "960000000300",
        "type": "email_click",
        "lead_id": "7",
        "at": "2026-11-20 09:30:00",
        "name": "Lead clicked from an email.",
        "data": {"emailID": "3", "emailJobID": "5", "subject": "Hi", "url": "https://x.example/a"},
    }
    assert eng.normalize_event({**raw, "eventSource": "leadCreation"}) is None
    assert eng.normalize_event({**raw, "eventSource": "emailBounce"}) is None


# -- templates and payloads -------------------------------------------------------------


def test_render_template_blanks_missing_fields_and_honours_format_specs() -> None:
    fields = {"formName": "Contact   Us", "url": "https://x.example/" + "a" * 50}
    assert eng.render_template("Form: {formName} {missing}", fields) == "Form: Contact Us"
    assert eng.render_template("{url:.20}", fields) == "https://x.example/aa"


@pytest.mark.parametrize(
    "template", ["{subject.upper}", "{data[0]}", "{subject!r}", "{}", "{subject:{width}}", "{x"]
)
def test_template_names_refuse_anything_but_plain_fields(template: str) -> None:
    with pytest.raises(ValueError):
        eng.template_names(template)


def test_build_task_for_a_form_submission() -> None:
    ev = event(
        "41",
        "form_submission",
        "2026-11-20 09:30:15",
        formID="3",
        formName="Webinar",
        url="https://www.example.com/webinar?utm=1",
    )
    payload = eng.build_task(ev, spec(), who_id="00Q000000000001AAA", owner_id="005000000000002AAA")
    assert payload == {
        "LeadGen_Event_Id__c": "LG-EVT-41",
        "WhoId": "00Q000000000001AAA",
        "OwnerId": "005000000000002AAA",
        "Subject": "Form submitted: Webinar",
        "ActivityDate": "2026-11-20",
        "Status": "Completed",
        "Priority": "Normal",
        "Type": "Other",
        "TaskSubtype": "Task",
        "Description": "Form page: https://www.example.com/webinar?utm=1\n"
        "Lead Gen & CRM form submission, event 41, at 2026-11-20 09:30:15 UTC.",
    }


def test_build_task_options_owner_subtype_completed_time_and_time_zone() -> None:
    s = spec(email_open={"subject": "Opened: {subject}", "subtype": None, "type": None})
    s = s.model_copy(update={"activity_timezone": "America/New_York"})
    ev = event("5", "email_open", "2026-11-20 02:00:00", subject="Hi")
    payload = eng.build_task(ev, s, who_id="003x", owner_id=None, set_completed_at=True)
    assert "OwnerId" not in payload  # left to Salesforce: the integration user
    assert "TaskSubtype" not in payload and "Type" not in payload
    assert payload["ActivityDate"] == "2026-11-19"  # 02:00 UTC is still the 19th in New York
    assert payload["CompletedDateTime"] == "2026-11-20T02:00:00Z"


def test_description_labels_depend_on_the_event_type() -> None:
    click = event("8", "email_click", url="https://x.example/p", subject="News", emailJobID="5")
    text = eng.build_description(click, spec().events["email_click"])
    assert text.splitlines() == [
        "Link URL: https://x.example/p",
        "Email subject: News",
        "Lead Gen & CRM first click in a marketing email, event 8, at 2026-11-20 09:30:00 UTC.",
    ]
    visit = event("9", "page_visit", url="https://www.example.com/pricing/?a=1")
    assert eng.build_description(visit, spec().events["page_visit"]).startswith(
        "Page URL: https://www.example.com/pricing/?a=1\nLead Gen"  # no empty Referrer line
    )
    payload = eng.build_task(visit, spec(), who_id="003x", owner_id=None)
    assert payload["Subject"] == "Visited page: www.example.com/pricing"


def test_owner_is_the_record_owner_only_when_an_active_user() -> None:
    active = {"005A"}
    assert eng.pick_owner({"OwnerId": "005A"}, active) == "005A"
    assert eng.pick_owner({"OwnerId": "005B"}, active) is None  # inactive user
    assert eng.pick_owner({"OwnerId": "00G1"}, active | {"00G1"}) is None  # a queue
    assert eng.pick_owner({}, active) is None


# -- spec checks --------------------------------------------------------------------------


def test_repo_spec_loads_with_all_five_types_on() -> None:
    s = eng.load_spec()
    assert s.enabled_types() == list(eng.EVENT_TYPES)


def test_spec_check_names_the_path_of_bad_templates_and_fields() -> None:
    s = spec(
        email_send={"subject": "Sent: {subjct}"},
        page_visit={"subject": "{url}", "description": ["formName"], "enabled": False},
    )
    s = s.model_copy(update={"activity_timezone": "Mars/Olympus"})
    problems = dict(eng.check_spec(s))
    assert "{subjct}" in problems["events.email_send.subject"]
    assert "'formName'" in problems["events.page_visit.description[0]"]  # checked while off too
    assert "Mars/Olympus" in problems["activity_timezone"]


def test_spec_check_against_the_task_describe() -> None:
    assert eng.check_spec_against_schema(spec(), task_schema()) == []
    bad = spec(email_send={"subject": "Sent", "subtype": "Newsletter"})
    problems = dict(eng.check_spec_against_schema(bad, task_schema()))
    assert (
        "'Newsletter' is not a value of Task.TaskSubtype" in problems["events.email_send.subtype"]
    )
    # a disabled type's picklist values do not matter
    off = spec(email_send={"subject": "Sent", "subtype": "Newsletter", "enabled": False})
    assert eng.check_spec_against_schema(off, task_schema()) == []
    not_ext = eng.check_spec_against_schema(
        spec(), task_schema(LeadGen_Event_Id__c={"externalId": False, "length": 20})
    )
    assert [p for p, _ in not_ext] == ["external_id_field", "external_id_field"]


# -- the quality gate ---------------------------------------------------------------------


def test_gate_rejects_missing_who_long_subject_and_restricted_picklist_values() -> None:
    from crm_sync.pipeline.validate import Validator

    s = spec()
    good = eng.build_task(event("1", "email_send", subject="A"), s, who_id="00Qa", owner_id=None)
    plans = [
        {"key": "k0", "type": "email_send", "outcome": "deliver", "sf_op": "upsert", "sf_payload": good},
        {"key": "k1", "type": "email_send", "outcome": "deliver", "sf_op": "upsert", "sf_payload": {**good, "WhoId": None}},
        {"key": "k2", "type": "email_send", "outcome": "deliver", "sf_op": "upsert", "sf_payload": {**good, "Subject": "x" * 256}},
        {"key": "k3", "type": "email_send", "outcome": "deliver", "sf_op": "upsert", "sf_payload": {**good, "TaskSubtype": "Fax"}},
        {"key": "k4", "type": "email_send", "outcome": "hold"},
        {"key": "k5", "type": "email_send", "outcome": "deliver", "sf_op": "upsert", "sf_payload": {**good, "Subject": ""}},
    ]  # fmt: skip
    failures = eng.validate_tasks(plans, s, task_schema(), Validator())
    got = {i: [(f.check, f.field) for f in fs] for i, fs in failures.items()}
    assert got == {
        1: [("required", "WhoId")],
        2: [("max_length", "Subject")],
        3: [("picklist", "TaskSubtype")],
        5: [("required", "Subject")],
    }
    assert failures[2][0].to_dict()["category"] == "length"


# -- load: exactly once ------------------------------------------------------------------


class FakeSalesforce:
    """Tasks by external id; an upsert onto an existing key fails on TaskSubtype like the org
    (the field can only be set on create)."""

    def __init__(self, existing: dict[str, bool]):
        self.existing = dict(existing)  # key -> is deleted
        self.upserted: list[list[str]] = []
        self.bulk_threshold = 0
        self.calls: dict[str, int] = {}
        self.api_calls = 0
        self.race: set[str] = set()  # keys another writer creates between our read and write

    def query_by_values(self, sobject, fields, field, values, *, include_deleted=False, where=None):
        assert include_deleted, "deleted Tasks must be seen, or a rep's deletion is undone"
        for v in values:
            if v in self.existing:
                yield {"Id": f"00T{v}", field: v, "IsDeleted": self.existing[v]}

    def upsert(self, sobject, ext, records):
        self.upserted.append([r[ext] for r in records])
        out = []
        for i, r in enumerate(records):
            if r[ext] in self.race:
                err = RecordError("INVALID_FIELD_FOR_INSERT_UPDATE", "no", ("TaskSubtype",))
                out.append(WriteResult(i, False, errors=(err,)))
            elif r.get("Subject") == "refuse":
                err = RecordError("FIELD_CUSTOM_VALIDATION_EXCEPTION", "rule says no", ("Subject",))
                out.append(WriteResult(i, False, errors=(err,)))
            else:
                out.append(WriteResult(i, True, id=f"00T{r[ext]}", created=True))
        return out


@pytest.fixture
def ctx(make_ctx) -> RunContext:
    c = make_ctx("sync_engagement_activities", domain="engagement")
    c.folder.write_json("engagement_spec.json", spec().model_dump(mode="json"))
    return c


def plans_for(ctx: RunContext, keys_subjects: list[tuple[str, str]]) -> None:
    rows = [
        {
            "key": k,
            "type": "email_send",
            "outcome": "deliver",
            "sf_op": "upsert",
            "sf_rejected": [],
            "sf_payload": {"LeadGen_Event_Id__c": k, "Subject": subj, "WhoId": "00Qa"},
        }
        for k, subj in keys_subjects
    ]
    ctx.folder.write_jsonl("plans/validated.jsonl", rows)


def test_load_writes_only_missing_keys_and_counts_the_rest(ctx) -> None:
    plans_for(
        ctx, [("LG-EVT-1", "a"), ("LG-EVT-2", "b"), ("LG-EVT-3", "c"), ("LG-EVT-4", "refuse")]
    )
    sf = FakeSalesforce({"LG-EVT-1": False, "LG-EVT-2": True})
    out = eng.load_stage(ctx, sf)
    assert sf.upserted == [["LG-EVT-3", "LG-EVT-4"]]  # present and rep-deleted Tasks untouched
    assert sf.bulk_threshold == 2000  # the spec's threshold reaches the client
    assert out["counts"] == {
        "skipped_already_done": 0,
        "already_present": 1,
        "deleted_in_salesforce": 1,
        "created": 1,
        "failed": 1,
    }
    # a retried load task skips what the first attempt recorded
    again = eng.load_stage(ctx, FakeSalesforce({}))
    assert again["counts"] == {"skipped_already_done": 4}


def test_a_task_created_by_someone_else_between_read_and_write_is_already_present(ctx) -> None:
    plans_for(ctx, [("LG-CLICK-7-5", "a")])
    sf = FakeSalesforce({})
    sf.race = {"LG-CLICK-7-5"}
    out = eng.load_stage(ctx, sf)
    assert out["counts"]["already_present"] == 1 and "failed" not in out["counts"]
    [row] = list(ctx.folder.read_jsonl("results/sf.jsonl"))
    assert row["op"] == "present"


def test_dry_run_reads_but_writes_nothing(ctx) -> None:
    ctx.dry_run = True
    plans_for(ctx, [("LG-EVT-1", "a"), ("LG-EVT-2", "b")])
    sf = FakeSalesforce({"LG-EVT-1": False})
    out = eng.load_stage(ctx, sf)
    assert sf.upserted == []
    assert out["counts"] == {"skipped_already_done": 0, "already_present": 1, "would_create": 1}


def test_spec_snapshot_round_trips(ctx) -> None:
    assert eng.run_spec(ctx) == spec()
    assert json.loads(ctx.folder.local_path("engagement_spec.json").read_text())["version"] == 1
