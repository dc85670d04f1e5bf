"""Opportunities domain: stage map, memberships, primary lead, plans, quality gate and tallies.

Schemas come from the sandboxes' own object definitions (in process, no server), the specs from
``include/mappings``; everything here is pure or uses in-process fakes.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from crm_sync.domains.opportunities import match, memberships, plan, record, rules, stages, validate
from crm_sync.errors import ConfigError
from crm_sync.mapping.loader import SpecError, load_object_spec, load_stage_spec, spec_path
from crm_sync.mapping.models import Direction, StageSpec
from crm_sync.mapping.owners import OwnerMap
from crm_sync.mapping.schema import LiveSchema
from crm_sync.pipeline.context import RunContext
from crm_sync.pipeline.tally import RunTally
from tests.unit.conftest import WINDOW

pytestmark = pytest.mark.unit

# The domain's functions under test, by the module that owns each rule.
opp = SimpleNamespace(
    SPEC_NAMES=rules.SPEC_NAMES,
    resolve_stages=stages.resolve_stages,
    stage_ids_with=stages.stage_ids_with,
    check_stage_resolution=stages.check_stage_resolution,
    plan_memberships=memberships.plan_memberships,
    primary_lead=memberships.primary_lead,
    current_records=match.current_records,
    plan_records=plan.plan_records,
    validate_plans=validate.validate_plans,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "specs"
SALLY, SAM = "0055e000000000AAAA", "0055e000000000BAAA"
MORGAN = "313361052"


@pytest.fixture
def schema(sandbox_schema: LiveSchema) -> LiveSchema:
    return sandbox_schema


@pytest.fixture(scope="module")
def specs() -> dict[str, Any]:
    return {s: load_object_spec(spec_path(n)) for s, n in opp.SPEC_NAMES.items()}


@pytest.fixture
def rctx(schema, specs):
    from crm_sync.pipeline.reconcile import ReconcileContext

    owners = OwnerMap(lg_to_sf={MORGAN: SALLY}, sf_to_lg={SALLY: MORGAN})
    return ReconcileContext(specs=specs, schema=schema, owners=owners)


def ctx(**kw: Any) -> RunContext:
    """A run of the opportunities DAG (these tests never touch its run folder)."""
    return RunContext(
        dag_id="sync_opportunities",
        run_id="r1",
        domain="opportunity",
        window_start=WINDOW[0],
        window_end=WINDOW[1],
        **kw,
    )


# -- specs ------------------------------------------------------------------------------------


def test_shipped_specs_are_pull_only_and_the_stage_map_covers_every_salesforce_stage() -> None:
    from sandbox.salesforce.schema import OPPORTUNITY_STAGES

    for name in ("opportunities", "accounts"):
        spec = load_object_spec(spec_path(name))
        assert {r.direction for r in spec.fields} == {Direction.PULL}
    stages = load_stage_spec(spec_path("opportunity_stages"))
    assert set(stages.stages) == set(OPPORTUNITY_STAGES)
    assert stages.create_missing_deal_stages is True


@pytest.mark.parametrize(
    "name,expected",
    [
        (
            "opportunities_two_way",
            "opportunities_two_way.yaml: fields[2].direction: opportunities are synced one way, "
            "from Salesforce: only 'pull' or 'none' is allowed (got 'two-way')",
        ),
        (
            "opportunities_accounts_pushed",
            "opportunities_accounts_pushed.yaml: fields[1].direction: accounts are synced one way, "
            "from Salesforce: only 'pull' or 'none' is allowed (got 'push')",
        ),
    ],
)
def test_a_spec_that_would_write_salesforce_is_refused_at_load(name: str, expected: str) -> None:
    with pytest.raises(SpecError) as exc:
        load_object_spec(FIXTURES / "invalid" / f"{name}.yaml")
    assert isinstance(exc.value, ConfigError)
    assert expected in str(exc.value)


def test_stage_spec_needs_an_explicit_opt_in_to_create_deal_stages(tmp_path: Path) -> None:
    assert (
        StageSpec(version=1, stages={"Prospecting": "Prospecting"}).create_missing_deal_stages
        is False
    )
    p = tmp_path / "stages.yaml"
    p.write_text("version: 1\nstages:\n  Prospecting: '  '\n")
    with pytest.raises(SpecError, match=r"stages\.Prospecting: String should have at least 1"):
        load_stage_spec(p)


# -- stage map ---------------------------------------------------------------------------------

DEAL_STAGES = [
    {"id": "31270001", "dealStageName": "Prospecting"},
    {"id": "31270002", "dealStageName": "closed  won"},
]


def test_stages_resolve_by_name_ignoring_case_and_spaces() -> None:
    spec = StageSpec(version=1, stages={"Prospecting": "prospecting", "Closed Won": "Closed Won"})
    res = opp.resolve_stages(spec, DEAL_STAGES, ["Prospecting", "Closed Won"])
    assert res.ids == {"Prospecting": "31270001", "Closed Won": "31270002"}
    assert res.problems == res.to_create == res.warnings == []


def test_missing_deal_stage_fails_unless_the_map_allows_creating_it() -> None:
    stages = {
        "Prospecting": "Prospecting",
        "Negotiation/Review": "Negotiation",
        "Other": "negotiation",
    }
    strict = opp.resolve_stages(StageSpec(version=1, stages=stages), DEAL_STAGES, [])
    assert len(strict.problems) == 2
    assert strict.problems[0].startswith(
        "stages.Negotiation/Review: deal stage 'Negotiation' does not exist"
    )
    with pytest.raises(
        ConfigError, match=r"include/mappings/opportunity_stages\.yaml: stages\.Other"
    ):
        opp.check_stage_resolution(strict)
    lenient = opp.resolve_stages(
        StageSpec(version=1, stages=stages, create_missing_deal_stages=True), DEAL_STAGES, []
    )
    assert lenient.problems == []
    assert lenient.to_create == ["Negotiation"]  # one stage for both rows
    lenient.created = {"Negotiation": "31270009"}
    ids = opp.stage_ids_with(lenient, StageSpec(version=1, stages=stages), placeholder=False)
    assert ids == {"Prospecting": "31270001", "Negotiation/Review": "31270009", "Other": "31270009"}


def test_dry_run_stands_in_for_deal_stages_it_would_create() -> None:
    spec = StageSpec(
        version=1, stages={"Negotiation/Review": "Negotiation"}, create_missing_deal_stages=True
    )
    res = opp.resolve_stages(spec, DEAL_STAGES, [])
    assert opp.stage_ids_with(res, spec, placeholder=True) == {
        "Negotiation/Review": "new:Negotiation"
    }
    assert opp.stage_ids_with(res, spec, placeholder=False) == {}


def test_stage_warnings_name_unmapped_salesforce_stages_and_unknown_keys() -> None:
    spec = StageSpec(version=1, stages={"Prospecting": "Prospecting", "Prospectin": "Prospecting"})
    res = opp.resolve_stages(spec, DEAL_STAGES, ["Prospecting", "Closed Lost"])
    assert res.warnings == [
        "Salesforce stage 'Closed Lost' is not mapped: its opportunities are quarantined",
        "stages.Prospectin: not an active Salesforce StageName value (typo?)",
    ]


# -- memberships and primary lead ----------------------------------------------------------------


def role(rid: str, contact: str, primary: bool = False, deleted: bool = False) -> dict[str, Any]:
    return {"Id": rid, "ContactId": contact, "IsPrimary": primary, "IsDeleted": deleted}


def member(lg_id: str, lead: str, contact: str, opportunity: str = "900") -> dict[str, Any]:
    return {
        "lg_id": lg_id,
        "synced_values": {
            "lead": lead,
            "contact": contact,
            "opportunity": opportunity,
            "roles": [],
        },
    }


def test_linked_contacts_become_memberships_and_the_others_wait() -> None:
    roles = [role("00K2", "003B"), role("00K1", "003A", primary=True), role("00K3", "003C")]
    ch = opp.plan_memberships(
        roles, {"003A": "L1", "003B": "L2"}, [], opportunity_lg=None, recreate=True
    )
    assert [(c["lead_lg"], c["roles"]) for c in ch.creates] == [("L1", ["00K1"]), ("L2", ["00K2"])]
    assert ch.pending == [{"role_id": "00K3", "contact_sf": "003C"}]
    assert ch.deletes == []


def test_one_membership_per_lead_whatever_the_number_of_roles() -> None:
    roles = [role("00K1", "003A"), role("00K2", "003A"), role("00K3", "003B")]
    # 003B was merged into the same lead as 003A (both contacts link to L1)
    ch = opp.plan_memberships(
        roles, {"003A": "L1", "003B": "L1"}, [], opportunity_lg="900", recreate=False
    )
    assert [(c["lead_lg"], c["roles"]) for c in ch.creates] == [("L1", ["00K1", "00K2", "00K3"])]


def test_existing_memberships_are_kept_removed_or_moved() -> None:
    roles = [role("00K1", "003A"), role("00K3", "003C"), role("00K4", "003D", deleted=True)]
    existing = [
        member("m1", "L1", "003A"),  # still there
        member("m2", "L2", "003B"),  # role removed
        member("m3", "L9", "003C"),  # the contact's person link moved to another lead
        member("m4", "L4", "003D"),  # role deleted
    ]
    ch = opp.plan_memberships(
        roles,
        {"003A": "L1", "003C": "L3", "003D": "L4"},
        existing,
        opportunity_lg="900",
        recreate=False,
    )
    assert [d["lg_id"] for d in ch.deletes] == ["m2", "m3", "m4"]
    assert [c["lead_lg"] for c in ch.creates] == ["L3"]
    assert ch.covered == ["00K1"]


def test_a_recreated_opportunity_gets_every_membership_again() -> None:
    ch = opp.plan_memberships(
        [role("00K1", "003A")],
        {"003A": "L1"},
        [member("m1", "L1", "003A")],
        opportunity_lg=None,
        recreate=True,
    )
    assert [d["lg_id"] for d in ch.deletes] == ["m1"]
    assert [c["lead_lg"] for c in ch.creates] == ["L1"]


@pytest.mark.parametrize(
    "roles,expected",
    [
        ([], ("", False)),
        ([role("00K1", "003A")], ("", False)),
        ([role("00K1", "003A", primary=True)], ("L1", False)),
        ([role("00K1", "003X", primary=True)], (None, True)),
        ([role("00K2", "003A", primary=True), role("00K1", "003B", primary=True)], ("L2", False)),
        ([role("00K1", "003B", primary=True, deleted=True), role("00K2", "003A")], ("", False)),
    ],
    ids=[
        "no-roles",
        "no-primary",
        "primary",
        "primary-not-linked",
        "lowest-id-wins",
        "deleted-primary",
    ],
)
def test_primary_lead(roles, expected) -> None:
    assert opp.primary_lead(roles, {"003A": "L1", "003B": "L2"}) == expected


# -- reading Lead Gen & CRM by id ------------------------------------------------------------------


def test_linked_records_are_read_by_id_in_batches_never_by_a_full_scan() -> None:
    rows = {str(i): {"id": str(i), "n": i} for i in range(1, 8)}
    batches: list[list[str]] = []
    singles: list[str] = []

    def by_ids(ids: list[str]):
        batches.append(ids)
        # a flaky or moving read: record 3 exists but is not in the answer
        return [rows[i] for i in ids if i in rows and i != "3"]

    def one(i: str):
        singles.append(i)
        return rows.get(i)

    got = opp.current_records(["1", "3", "2", "99", "", None, "1"], by_ids, one)
    assert set(got) == {"1", "2", "3"}  # 3 confirmed on its own: not taken for gone
    assert batches == [["1", "2", "3", "99"]]
    assert singles == ["3", "99"]  # only the ids the batch read missed
    assert opp.current_records([], by_ids, one) == {} and len(batches) == 1


# -- plans -------------------------------------------------------------------------------------

STAGES = {"Prospecting": "31270001", "Negotiation/Review": "31270005"}


def sf_opp(**kw: Any) -> dict[str, Any]:
    rec = {
        "Id": "0065e000000001AAAA",
        "IsDeleted": False,
        "Name": "Acme - Analytics",
        "StageName": "Prospecting",
        "CloseDate": "2026-12-31",
        "Amount": 50000.0,
        "Probability": 10.0,
        "IsClosed": False,
        "IsWon": False,
        "OwnerId": SALLY,
        "AccountId": "0015e000000001AAAA",
        "LastModifiedDate": "2026-11-20T09:20:00.000+0000",
        "_roles": [role("00K1", "003A", primary=True), role("00K2", "003B")],
    }
    rec.update(kw)
    return rec


def lg_opp(**kw: Any) -> dict[str, Any]:
    rec = {
        "id": "2018800001",
        "ownerID": MORGAN,
        "dealStageID": "31270001",
        "accountID": "40210001",
        "campaignID": None,
        "opportunityName": "Acme - Analytics",
        "probability": "10",
        "amount": "50000",
        "isClosed": "0",
        "isWon": "0",
        "closeDate": "2026-12-31 00:00:00",
        "isActive": "1",
        "primaryLeadID": "L1",
        "originatingLeadID": None,
    }
    rec.update(kw)
    return rec


SYNCED = {
    "opportunityName": "Acme - Analytics",
    "amount": "50000",
    "probability": "10",
    "closeDate": "2026-12-31",
    "isClosed": "false",
    "isWon": "false",
    "ownerID": SALLY,
    "dealStageID": "31270001",
    "accountID": "40210001",
    "primaryLeadID": "L1",
}


def linked_pair(
    sf: dict[str, Any] | None = None, lg: dict[str, Any] | None = None, **kw: Any
) -> dict[str, Any]:
    pair = {
        "pair": "opp:0065e000000001AAAA",
        "sf": sf or sf_opp(),
        "lg": lg or lg_opp(),
        "link": {
            "lg_id": "2018800001",
            "sf_id": "0065e000000001AAAA",
            "sf_object": "Opportunity",
            "status": "active",
            "synced_values": dict(SYNCED),
        },
        "state": "linked",
        "contacts": {"003A": "L1", "003B": "L2"},
        "memberships": [
            member("m1", "L1", "003A", "2018800001"),
            member("m2", "L2", "003B", "2018800001"),
        ],
        "account_lg": "40210001",
    }
    pair.update(kw)
    return pair


def by_kind(plans: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for p in plans:
        out.setdefault(p["kind"], []).append(p)
    return out


def test_a_new_opportunity_is_created_with_stage_account_owner_primary_and_memberships(
    rctx,
) -> None:
    pair = {
        "pair": "opp:0065e000000001AAAA",
        "sf": sf_opp(
            _roles=[role("00K1", "003A", primary=True), role("00K2", "003B"), role("00K3", "003C")]
        ),
        "lg": None,
        "link": None,
        "state": "new",
        "contacts": {"003A": "L1", "003B": "L2"},
        "memberships": [],
        "account_lg": "40210001",
    }
    plans = by_kind(opp.plan_records("opportunity", [pair], rctx, STAGES))
    [o] = plans["opportunity"]
    assert o["lg_op"] == "create"
    assert o["lg_payload"] == {
        "opportunityName": "Acme - Analytics",
        "amount": "50000",
        "probability": "10",
        "closeDate": "2026-12-31",
        "isClosed": "0",
        "isWon": "0",
        "ownerID": MORGAN,
        "dealStageID": "31270001",
        "accountID": "40210001",
        "primaryLeadID": "L1",
    }
    assert o["agreed_if_lg"]["ownerID"] == SALLY  # owners are canonical as Salesforce ids
    assert sorted(
        (m["lead_lg"], m["lg_payload"]["opportunityID"]) for m in plans["membership"]
    ) == [
        ("L1", None),
        ("L2", None),
    ]  # the opportunity id is known once load has created it
    assert [(p["sf_id"], p["contact_sf"]) for p in plans["role_pending"]] == [("00K3", "003C")]


def test_an_unchanged_linked_opportunity_plans_nothing(rctx) -> None:
    plans = opp.plan_records("opportunity", [linked_pair()], rctx, STAGES)
    [o] = plans
    assert o["lg_op"] is None and o["lg_payload"] == {}
    assert o["memberships_kept"] == 2 and o["roles_covered"] == ["00K1", "00K2"]
    assert o["events"] == []


def test_a_stage_change_updates_the_deal_stage_and_reports_a_leadgen_edit(rctx) -> None:
    pair = linked_pair(
        sf=sf_opp(StageName="Negotiation/Review", Probability=90.0),
        lg=lg_opp(opportunityName="Renamed in LG"),
    )
    [o] = opp.plan_records("opportunity", [pair], rctx, STAGES)
    assert o["lg_op"] == "update"
    assert o["lg_payload"] == {
        "id": "2018800001",
        "opportunityName": "Acme - Analytics",
        "probability": "90",
        "dealStageID": "31270005",
    }
    [e] = o["events"]
    assert e["event"] == "leadgen_edit_overwritten"
    assert "opportunityName" in e["detail"] and "dealStageID" not in e["detail"]


def test_an_unmapped_stage_is_left_for_the_gate_never_defaulted(rctx) -> None:
    [o] = opp.plan_records(
        "opportunity", [linked_pair(sf=sf_opp(StageName="Closed Lost"))], rctx, STAGES
    )
    assert o["lg_op"] == "update"
    assert o["lg_payload"]["dealStageID"] is None
    assert o["stage_unmapped"] == "Closed Lost"


def test_an_account_created_in_the_same_run_is_resolved_at_load(rctx) -> None:
    pair = linked_pair(sf=sf_opp(AccountId="0015e000000009AAAA"), account_lg=None)
    [o] = opp.plan_records("opportunity", [pair], rctx, STAGES)
    assert o["account_deferred"] == "0015e000000009AAAA"
    assert o["lg_op"] == "update" and "accountID" not in o["lg_payload"]


def test_a_primary_contact_not_linked_yet_leaves_the_primary_lead_alone(rctx) -> None:
    pair = linked_pair(sf=sf_opp(_roles=[role("00K1", "003A"), role("00K9", "003Z", primary=True)]))
    plans = by_kind(opp.plan_records("opportunity", [pair], rctx, STAGES))
    [o] = plans["opportunity"]
    assert o["primary_pending"] is True and "primaryLeadID" not in o["lg_payload"]
    assert [m["lg_id"] for m in plans["membership"]] == ["m2"]  # 003B's role is gone
    assert [p["sf_id"] for p in plans["role_pending"]] == ["00K9"]


def test_values_already_right_in_leadgen_refresh_the_synced_values_without_a_write(rctx) -> None:
    link_values = {**SYNCED, "dealStageID": "31270000"}
    pair = linked_pair()
    pair["link"]["synced_values"] = link_values
    [o] = opp.plan_records("opportunity", [pair], rctx, STAGES)
    assert o["lg_op"] is None
    assert o["agreed_now"] == {"dealStageID": "31270001"}


def test_deleted_in_salesforce_deletes_the_linked_record_only(rctx) -> None:
    linked = linked_pair(sf=sf_opp(IsDeleted=True))
    unlinked = {
        **linked_pair(sf=sf_opp(Id="0065e000000002AAAA", IsDeleted=True)),
        "link": None,
        "state": "new",
    }
    [o] = opp.plan_records("opportunity", [linked, unlinked], rctx, STAGES)
    assert (o["lg_op"], o["lg_payload"], o["memberships_drop"]) == (
        "delete",
        {"id": "2018800001"},
        ["m1", "m2"],
    )


def test_a_record_deleted_in_leadgen_is_created_again(rctx) -> None:
    pair = linked_pair(lg=None, state="recreate")
    pair["lg"] = None
    plans = by_kind(opp.plan_records("opportunity", [pair], rctx, STAGES))
    [o] = plans["opportunity"]
    assert o["lg_op"] == "create" and o["lg_id"] is None
    assert o["link_change"] == {"kind": "recreate", "old_lg_id": "2018800001"}
    assert sorted(m["lg_op"] for m in plans["membership"]) == [
        "create",
        "create",
        "delete",
        "delete",
    ]


def test_accounts_are_created_updated_and_deleted(rctx) -> None:
    sf = {
        "Id": "0015e000000001AAAA",
        "IsDeleted": False,
        "Name": "Acme Corp ",
        "Industry": "Technology",
        "NumberOfEmployees": 250,
        "OwnerId": SAM,
    }
    new = {"pair": "acc:1", "sf": sf, "lg": None, "link": None, "state": "new"}
    [a] = opp.plan_records("account", [new], rctx, STAGES)
    assert a["lg_op"] == "create"
    assert a["lg_payload"] == {
        "accountName": "Acme Corp",
        "industry": "Technology",
        "numberOfEmployees": "250",
    }
    assert a["events"][0]["event"] == "owner_unmapped_sf"  # Sam has no Lead Gen & CRM user
    gone = {
        "pair": "acc:1",
        "sf": {**sf, "IsDeleted": True, "MasterRecordId": "0015e000000002AAAA"},
        "lg": {"id": "40210001"},
        "link": {"lg_id": "40210001", "status": "active", "synced_values": {}},
        "state": "linked",
    }
    [d] = opp.plan_records("account", [gone], rctx, STAGES)
    assert d["lg_op"] == "delete" and "merged into 0015e000000002AAAA" in d["events"][0]["detail"]


# -- quality gate --------------------------------------------------------------------------------


def test_the_gate_quarantines_unmapped_stages_missing_names_and_bad_values(schema, specs) -> None:
    from crm_sync.pipeline.validate import Validator

    plans = [
        {"pair": "opp:1", "kind": "opportunity", "sf_id": "0061", "lg_id": None, "lg_op": "create",
         "lg_payload": {"opportunityName": "Fine", "dealStageID": "31270001", "probability": "10"}},
        {"pair": "opp:2", "kind": "opportunity", "sf_id": "0062", "lg_id": None, "lg_op": "create",
         "lg_payload": {"opportunityName": "No stage", "dealStageID": None}, "stage_unmapped": "Closed Lost"},
        {"pair": "opp:3", "kind": "opportunity", "sf_id": "0063", "lg_id": None, "lg_op": "create",
         "lg_payload": {"dealStageID": "31270001", "probability": "150"}},
        {"pair": "acc:4", "kind": "account", "sf_id": "0014", "lg_id": "402", "lg_op": "update",
         "lg_payload": {"id": "402", "accountName": "x" * 256}},
        {"pair": "mem:5", "kind": "membership", "sf_id": "0061", "lg_op": "create",
         "lg_payload": {"opportunityID": None, "leadID": "L1"}},
    ]  # fmt: skip
    failures = opp.validate_plans(plans, specs, schema, Validator())
    assert set(failures) == {1, 2, 3}
    [stage] = failures[1]
    assert (stage.check, stage.field, stage.category) == (
        "picklist:stage_map",
        "dealStageID",
        "picklist",
    )
    assert (
        "stage 'Closed Lost' has no deal stage in include/mappings/opportunity_stages.yaml"
        in stage.message
    )
    assert sorted(f.check for f in failures[2]) == ["format:probability", "required"]
    [long] = failures[3]
    assert (long.check, long.field) == ("max_length", "accountName")


# -- tallies -------------------------------------------------------------------------------------


def result(pair: str, success: bool = True, **kw: Any) -> dict[str, Any]:
    return {"pair": pair, "success": success, "error_code": None, "error_message": "", **kw}


def test_tally_counts_each_object_and_quarantines_rejections() -> None:
    plans = [
        {"pair": "opp:1", "kind": "opportunity", "sf_id": "0061", "lg_op": "create", "lg_payload": {},
         "roles_covered": ["00K7"], "memberships_kept": 1},
        {"pair": "opp:2", "kind": "opportunity", "sf_id": "0062", "lg_op": "update", "lg_payload": {},
         "lg_rejected": [{"category": "picklist", "check": "picklist:stage_map", "field": "dealStageID",
                          "message": "stage 'X' has no deal stage"}]},
        {"pair": "acc:3", "kind": "account", "sf_id": "0013", "lg_op": None},
        {"pair": "mem:1:L1", "kind": "membership", "sf_id": "0061", "opportunity_sf": "0061",
         "lg_op": "create", "roles": ["00K1", "00K2"], "lg_payload": {}},
        {"pair": "mem:1:L2", "kind": "membership", "sf_id": "0061", "opportunity_sf": "0061",
         "lg_op": "create", "roles": ["00K3"], "lg_payload": {}},
        {"pair": "mem:9:L9", "kind": "membership", "sf_id": "0069", "opportunity_sf": "0069",
         "lg_op": "create", "roles": ["00K9"], "lg_payload": {}},
        {"pair": "mem:1:m5", "kind": "membership", "sf_id": "0061", "opportunity_sf": "0061",
         "lg_op": "delete", "roles": ["00K5"], "lg_id": "m5", "lg_payload": {}},
        {"pair": "role:00K4", "kind": "role_pending", "sf_id": "00K4", "opportunity_sf": "0061",
         "contact_sf": "003D"},
    ]  # fmt: skip
    results = {
        "opp:1": result("opp:1", id="201", links={"opportunity_created": 1}),
        "mem:1:L1": result("mem:1:L1", id="851"),
        "mem:1:L2": result("mem:1:L2", False, error_code="214", error_message="lead does not exist",
                           error_fields=["leadID"]),
        "mem:1:m5": result("mem:1:m5", already_gone=True),
    }  # fmt: skip
    # quarantined before this run: the keys whose rows a pass resolves (00K5 had none)
    prior = frozenset(("sf_to_lg", k) for k in ("sf:0061", "sf:0013", "sf:00K1", "sf:0099"))
    t = RunTally(prior=prior)
    sec = record.tally(ctx(), t, plans, results)
    assert dict(sec.by_object["opportunities"]) == {"created": 1, "quarantined": 1}
    assert dict(sec.by_object["accounts"]) == {"unchanged": 1, "quarantined": 0}
    assert dict(sec.by_object["memberships"]) == {
        "unchanged": 1,
        "created": 1,
        "failed": 1,
        "waiting_for_opportunity": 1,
        "deleted": 1,
        "already_gone": 1,
        "pending": 1,
        "quarantined": 0,
    }
    assert sec.delivered == {"00K7", "00K1", "00K2"}
    assert t.passed == {"sf_to_lg": {"sf:0061", "sf:0013", "sf:00K1"}}
    assert [(q.record_key, q.domain, q.category) for q in t.quarantine] == [
        ("sf:0062", "opportunity", "picklist"),
        ("sf:00K3", "membership", "missing link"),
    ]
    assert "lead does not exist" in t.quarantine[1].message
    assert (t.planned, t.rejected_new) == (6, 2)
    assert dict(t.links) == {"opportunity_created": 1}
    assert t.sides["leadgen"] == {"writes": 3, "failed": 1}
    # every plan has one outcome: 3 loaded (opp:1, mem:1:L1, mem:1:m5), 1 unchanged (acc:3),
    # 2 rejected, 1 deferred (mem:9:L9), 1 held (role:00K4)
    assert t.rows_block() == {
        "loaded": 3,
        "unchanged": 1,
        "rejected": 2,
        "still_quarantined": 0,
        "deferred": 1,
        "would_write": 0,
        "held": 1,
        "skipped": 0,
    }
    assert t.pairs == len(plans)


def test_tally_in_a_dry_run_reports_what_it_would_write() -> None:
    plans = [
        {"pair": "opp:1", "kind": "opportunity", "sf_id": "0061", "lg_op": "create", "roles_covered": ["00K1"]},
        {"pair": "mem:1:L1", "kind": "membership", "sf_id": "0061", "opportunity_sf": "0061",
         "lg_op": "create", "roles": ["00K1"]},
    ]  # fmt: skip
    t = RunTally(dry_run=True)
    sec = record.tally(ctx(dry_run=True), t, plans, {})
    assert sec.by_object["opportunities"]["would_create"] == 1
    assert sec.by_object["memberships"]["would_create"] == 1
    assert sec.delivered == set() and t.quarantine == []
    assert t.rows["would_write"] == 2
