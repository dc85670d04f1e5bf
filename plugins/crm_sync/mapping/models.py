"""Typed, versioned mapping specs (the YAML files in ``include/mappings/``).

A spec pairs one Lead Gen & CRM object with one Salesforce object and says, per field, which side
wins. Models use ``extra="forbid"`` so a typo in a key is an error, not a silently ignored row.
Semantic rules that span rows (unique fields, allowed directions per object, lead score push
only) live in :mod:`crm_sync.mapping.loader` so that its errors can name the exact row.
"""

from __future__ import annotations

import math
from datetime import date
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

SPEC_VERSION = 1

FieldName = Annotated[
    str, StringConstraints(min_length=1, max_length=120, pattern=r"^[A-Za-z][A-Za-z0-9_]*$")
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Direction(StrEnum):
    """Which side overrides the other for one field.

    ``push``: Lead Gen & CRM overrides Salesforce. ``pull``: Salesforce overrides Lead Gen & CRM.
    ``two-way``: a change on one side since the last sync wins; a change on both sides goes to
    the newer record, ties to the spec's ``two_way_tie``. ``none``: mapped but never synced.
    """

    PUSH = "push"
    PULL = "pull"
    TWO_WAY = "two-way"
    NONE = "none"

    @property
    def writes_salesforce(self) -> bool:
        return self in (Direction.PUSH, Direction.TWO_WAY)

    @property
    def writes_leadgen(self) -> bool:
        return self in (Direction.PULL, Direction.TWO_WAY)


class Side(StrEnum):
    LEADGEN = "leadgen"
    SALESFORCE = "salesforce"


class BlankPolicy(StrEnum):
    """``keep``: a blank value never overwrites a non-blank one. ``overwrite``: blanks win too."""

    KEEP = "keep"
    OVERWRITE = "overwrite"


Step = Literal["trim", "lower", "upper", "owner"]


class Rule(Strict):
    """A user-defined data-quality rule on the value written to the target.

    Exactly one of ``regex``, ``max_length``, ``required``, ``allowed`` is set.
    """

    name: str | None = Field(default=None, description="shown in quarantine reasons")
    regex: str | None = None
    max_length: int | None = Field(default=None, ge=1)
    required: bool | None = None
    allowed: list[str] | None = None
    message: str | None = None


class FieldMapping(Strict):
    """One row: a Lead Gen & CRM field, a Salesforce field and the direction between them."""

    leadgen: FieldName = Field(description="standard field name or custom-field systemName")
    salesforce: FieldName = Field(description="API name; custom fields end in __c")
    direction: Direction
    blank: BlankPolicy = BlankPolicy.KEEP
    transform: list[Step] = Field(default_factory=list)
    value_map: dict[str, str] | None = Field(
        default=None,
        description="Lead Gen & CRM value -> Salesforce value (picklists); inverted for pull",
    )
    rules: list[Rule] = Field(default_factory=list)

    @property
    def key(self) -> str:
        """Stable key of the row in the state store (the Lead Gen & CRM field name)."""
        return self.leadgen


class RecordLink(Strict):
    """The 'Lead Hyperlink Widget': fields on the Salesforce record pointing back at the lead."""

    id_field: FieldName = "LeadGen_Id__c"
    url_field: FieldName | None = "LeadGen_URL__c"
    url_template: str = Field(
        default="{base_url}/Contacts/View/{id}",
        description="formatted with base_url (connection extra 'app_base_url') and the lead id",
    )


class PersonRules(Strict):
    """Lead/contact-only settings."""

    leadgen_status_for_new: str = Field(
        default="open", description="leadStatus given to leads created from Salesforce Leads"
    )
    create_in_salesforce: bool = True
    create_in_leadgen: bool = True


ScopeOp = Literal[
    "eq", "ne", "in", "not_in", "blank", "not_blank", "gt", "gte", "lt", "lte", "contains"
]  # fmt: skip


def _scalar(v: Any) -> Any:
    """A condition operand as YAML gives it: text, a finite number, true/false, a date or a
    datetime. Anything else (a list, a mapping, null inside ``values``, NaN) is refused here, with
    one message instead of one per type pydantic tried."""
    if isinstance(v, bool | int | str | date):  # datetime is a date
        return v
    if isinstance(v, float) and math.isfinite(v):
        return v
    got = {type(None): "null", list: "a list", dict: "a mapping"}.get(type(v), type(v).__name__)
    if isinstance(v, float):
        got = "a number that is not finite"
    raise ValueError(f"must be text, a number, true/false, a date or a datetime (got {got})")


ScopeValue = Annotated[Any, BeforeValidator(_scalar)]


class ScopeCondition(Strict):
    """One condition on one field: ``{field: LeadSource, op: in, values: [Web, Partner]}``.

    ``in``/``not_in`` take ``values``; ``blank``/``not_blank`` take nothing; the others take one
    ``value``. Which operators and operand types a field accepts depends on its type
    (:mod:`crm_sync.mapping.scope`); the loader and the live check say which.
    """

    field: FieldName
    op: ScopeOp
    value: ScopeValue | None = None
    values: list[ScopeValue] | None = None


class SalesforceScope(Strict):
    """Records of the spec's Salesforce object that sync (both directions): all ``where``
    conditions hold."""

    where: list[ScopeCondition] = Field(min_length=1)


ListId = Annotated[int, Field(strict=True, ge=1, le=2**63 - 1)]


class LeadGenScope(Strict):
    """Leads that sync: all ``where`` conditions hold and, when ``lists`` is given, the lead is a
    member of at least one of those Lead Gen & CRM lists."""

    where: list[ScopeCondition] = Field(default_factory=list)
    lists: list[ListId] = Field(default_factory=list)


class Scope(Strict):
    """Which records sync. A side without a scope syncs every record, as a spec without
    ``scope`` does. See docs/mapping-specs.md, "Scope"."""

    salesforce: SalesforceScope | None = None
    leadgen: LeadGenScope | None = None


class ObjectSpec(Strict):
    """A mapping spec file."""

    version: Literal[1]
    kind: Literal["leads", "contacts", "opportunities", "accounts"]
    description: str | None = None
    leadgen_object: Literal["lead", "opportunity", "account"]
    salesforce_object: FieldName
    two_way_tie: Side = Side.SALESFORCE
    record_link: RecordLink | None = None
    person: PersonRules | None = None
    scope: Scope | None = None
    fields: list[FieldMapping] = Field(min_length=1)

    def row(self, key: str) -> FieldMapping:
        for f in self.fields:
            if f.key == key:
                return f
        raise KeyError(key)

    @property
    def synced_fields(self) -> list[FieldMapping]:
        return [f for f in self.fields if f.direction is not Direction.NONE]

    @property
    def creates_in_salesforce(self) -> bool:
        """Records new in Lead Gen & CRM are created in Salesforce (``person.create_in_salesforce``)."""
        return self.person is None or self.person.create_in_salesforce

    @property
    def creates_in_leadgen(self) -> bool:
        """Records new in Salesforce are created in Lead Gen & CRM (``person.create_in_leadgen``)."""
        return self.person is None or self.person.create_in_leadgen


class OwnerUser(Strict):
    """One Lead Gen & CRM user account mapped to one Salesforce user (by id or email)."""

    leadgen_id: str | None = None
    leadgen_email: str | None = None
    salesforce_id: str | None = None
    salesforce_username: str | None = None
    salesforce_email: str | None = None


class OwnerFallback(Strict):
    salesforce_username: str | None = None
    salesforce_id: str | None = None
    leadgen_id: str | None = None
    leadgen_email: str | None = None


class OwnerSpec(Strict):
    """``include/mappings/owners.yaml``: the seed's "This user has a CRM account" setting."""

    version: Literal[1]
    auto_match_by_email: bool = True
    fallback: OwnerFallback | None = None
    users: list[OwnerUser] = Field(default_factory=list)


class StageSpec(Strict):
    """``include/mappings/opportunity_stages.yaml``: Salesforce StageName -> deal stage name.

    A StageName that is not a key of ``stages`` is never given a default deal stage: the
    opportunities in it are quarantined until the map names one. Several Salesforce stages may
    share one deal stage. ``create_missing_deal_stages`` lets the sync create a mapped deal stage
    that Lead Gen & CRM does not have yet; it is off unless the file says so, because a typo in a
    deal stage name would otherwise become a stray stage in the pipeline.
    """

    version: Literal[1]
    description: str | None = None
    stages: dict[
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)],
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)],
    ] = Field(min_length=1)
    create_missing_deal_stages: bool = False


EventType = Literal["form_submission", "email_send", "email_open", "email_click", "page_visit"]


class EventTaskSpec(Strict):
    """How one marketing event type becomes a completed Salesforce Task.

    Which placeholders ``subject`` may use and which names ``description`` may list depend on
    the event type; :func:`crm_sync.domains.engagement.check_spec` checks them when the spec is
    loaded, so a typo fails the run before anything is read or written.
    """

    enabled: bool = True
    subject: str = Field(
        min_length=1,
        max_length=1000,
        description="str.format template over the event's fields, e.g. 'Filled out {formName}'",
    )
    type: str | None = Field(default="Other", description="Task.Type; null leaves it empty")
    subtype: str | None = Field(
        default="Task",
        description="Task.TaskSubtype (settable on create only); null keeps the org default",
    )
    description: list[FieldName] = Field(
        default_factory=list,
        description="event fields listed, one 'Label: value' line each, in the Task comments",
    )


class EngagementSpec(Strict):
    """``include/mappings/engagement.yaml``: which marketing events become Salesforce Tasks.

    An event type missing from ``events`` is off, like one with ``enabled: false``.
    """

    version: Literal[1]
    description: str | None = None
    external_id_field: FieldName = Field(
        default="LeadGen_Event_Id__c",
        description="Task external-id field holding the event identity (upsert key)",
    )
    status: str = Field(default="Completed", description="Task.Status: a closed status")
    priority: str = "Normal"
    activity_timezone: str = Field(
        default="UTC",
        description="IANA zone whose calendar date becomes Task.ActivityDate",
    )
    bulk_threshold: int = Field(
        default=2000, ge=1, description="more Tasks than this in one batch go through Bulk API 2.0"
    )
    events: dict[EventType, EventTaskSpec]

    def enabled_types(self) -> list[str]:
        """Event types switched on, in the order of :data:`EventType`."""
        order = list(EventType.__args__)  # type: ignore[attr-defined]
        return [t for t in order if t in self.events and self.events[t].enabled]
