"""``LeadGenClient``: the API's read methods on top of :class:`Transport`, writes mixed in.

Every read returns objects cleaned by ``codec.clean_row`` (entities decoded, timestamps in
UTC) and reads changeable sets with the no-skip readers of ``paging``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any

from crm_sync.clients.leadgen.codec import (
    TS_FORMAT,
    account_zone,
    clean_row,
    format_for_api,
)
from crm_sync.clients.leadgen.paging import (
    Page,
    UnorderedPages,
    UnstableSet,
    id_walk,
    range_scan,
)
from crm_sync.clients.leadgen.transport import (
    MAX_OBJECTS_PER_CALL,
    MAX_PAGE_SIZE,
    MAX_RANGE_PAGE_SIZE,
    LeadGenApiError,
    Transport,
    _tag,
)
from crm_sync.clients.leadgen.writes import WriteMethods
from crm_sync.errors import ConfigError, RetriableError

log = logging.getLogger("crm_sync.clients.leadgen")

# The most rows one answer holds, per method, whatever `limit` asks: the DateRange methods
# accept larger pages (RMUIT used 5000 with getLeadsDateRange); every other read stops at 500.
PAGE_CAPS: dict[str, int] = {"getLeadsDateRange": MAX_RANGE_PAGE_SIZE}
RANGE_TIMESTAMPS = {"create": "createTimestamp", "update": "updateTimestamp"}


class LeadGenClient(WriteMethods, Transport):
    """One account's API client. Thread-compatible, not thread-safe (one per task).

    ``output_timezone`` is the zone the account's API speaks (connection extra of the same
    name; default UTC): timestamps read come back in UTC, date arguments go out in that zone.
    ``page_size`` is the ``limit`` asked for; each method's own cap still applies (500 for all
    but getLeadsDateRange, which takes up to 5000: an hour of 10,000 changed leads is read in a
    few calls instead of forty).
    """

    def __init__(
        self,
        base_url: str,
        account_id: str,
        secret_key: str,
        *,
        batch_size: int = 500,
        page_size: int = MAX_RANGE_PAGE_SIZE,
        output_timezone: str | tzinfo | None = "UTC",
        **transport: Any,
    ):
        """``transport`` keywords (``transport.Transport``): session, max_per_second (10),
        max_retries (5), backoff_base (0.5), timeout (60), sleep, clock, conn_id."""
        super().__init__(base_url, account_id, secret_key, **transport)
        if not 1 <= batch_size <= MAX_OBJECTS_PER_CALL:
            raise ConfigError(
                f"batch_size must be between 1 and {MAX_OBJECTS_PER_CALL}, got {batch_size}"
            )
        if not 2 <= page_size <= MAX_RANGE_PAGE_SIZE:
            raise ConfigError(
                f"page_size must be between 2 and {MAX_RANGE_PAGE_SIZE}, got {page_size}"
            )
        self.batch_size = batch_size
        self.page_size = page_size
        self.zone = account_zone(output_timezone)
        self._events_upper_bound = True  # send getEvents endDate until the API refuses it
        self._fields: list[dict[str, Any]] | None = None  # getFields, once per client
        self.fields_read = False  # True once this client read getFields from the API

    # -- page plumbing ------------------------------------------------------------------

    def _limit(self, method: str) -> int:
        """The ``limit`` to send, which is also the size of a full page."""
        return min(self.page_size, PAGE_CAPS.get(method, MAX_PAGE_SIZE))

    def _page(self, method: str, params: Mapping[str, Any], key: str, offset: int) -> Page:
        limit = self._limit(method)
        result = self.call(method, {**params, "limit": limit, "offset": offset})
        rows = [clean_row(r, self.zone) for r in self._rows(method, result, key)]
        # Full = as many rows as the API gives at most; "hasMore": false (some list methods)
        # ends paging early, "hasMore": true is not trusted over the count.
        has_more = result.get("hasMore") if isinstance(result, Mapping) else None
        return Page(rows, len(rows) >= limit and has_more is not False)

    def _rows(self, method: str, result: Any, key: str) -> list[dict[str, Any]]:
        if isinstance(result, Mapping) and key in result:
            rows = result[key]
            if rows is None:
                return []
            if isinstance(rows, list):
                return rows
        found = sorted(result) if isinstance(result, Mapping) else type(result).__name__
        raise _tag(
            LeadGenApiError(
                f"Lead Gen & CRM {method}: expected result key {key!r}, got {found}", method=method
            ),
            code=None,
            method=method,
        )

    def _scan(self, method: str, params: Mapping[str, Any], key: str) -> Iterator[dict[str, Any]]:
        """Every row of an id-ordered list, lazily, without skipping (``paging.id_walk``)."""
        try:
            yield from id_walk(lambda offset: self._page(method, params, key, offset))
            return
        except UnorderedPages as exc:
            failure = _tag(
                LeadGenApiError(
                    f"Lead Gen & CRM {method} pages are not ordered by id ({exc}); the client "
                    "cannot page this set without risking skipped records "
                    "(docs/sandbox-leadgen.md, 'Paging without skipping')",
                    method=method,
                ),
                code=None,
                method=method,
            )
        raise failure

    def _offset_pages(
        self, method: str, params: Mapping[str, Any], key: str
    ) -> Iterator[dict[str, Any]]:
        """Plain offset paging, for sets that only grow at the end or have no ids."""
        offset = 0
        while True:
            page = self._page(method, params, key, offset)
            yield from page.rows
            if not page.full or not page.rows:
                return
            offset += len(page.rows)

    def _range(
        self,
        method: str,
        key: str,
        start: datetime,
        end: datetime,
        timestamp: str,
        extra: Mapping[str, Any] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every row of a ``*DateRange`` method in ``[start, end]``, without skipping."""
        if timestamp not in RANGE_TIMESTAMPS:
            raise ValueError(f"timestamp must be 'create' or 'update', got {timestamp!r}")
        lo = datetime.fromisoformat(format_for_api(start, "start", UTC))
        hi = datetime.fromisoformat(format_for_api(end, "end", UTC))
        column = RANGE_TIMESTAMPS[timestamp]

        def fetch(a: datetime, b: datetime, offset: int) -> Page:
            params = {
                **(extra or {}),
                "startDate": format_for_api(a.replace(tzinfo=UTC), "start", self.zone),
                "endDate": format_for_api(b.replace(tzinfo=UTC), "end", self.zone),
                "timestamp": timestamp,
            }
            return self._page(method, params, key, offset)

        def hint(row: dict[str, Any]) -> datetime | None:
            try:
                return datetime.strptime(str(row.get(column)), TS_FORMAT)
            except ValueError:
                return None

        try:
            yield from range_scan(fetch, lo, hi, hint=hint)
            return
        except UnstableSet as exc:
            failure = _tag(
                RetriableError(
                    f"Lead Gen & CRM {method}: {exc}; read again later", code="unstable"
                ),
                code="unstable",
                method=method,
            )
        raise failure

    # -- leads --------------------------------------------------------------------------

    def _one(self, method: str, key: str, record_id: str | int) -> dict[str, Any] | None:
        rows = self._rows(method, self.call(method, {"id": str(record_id)}), key)
        return clean_row(rows[0], self.zone) if rows else None

    def get_lead(self, lead_id: str | int) -> dict[str, Any] | None:
        return self._one("getLead", "lead", lead_id)

    def get_leads(
        self, where: Mapping[str, Any] | None = None, fields: Sequence[str] | None = None
    ) -> Iterator[dict[str, Any]]:
        """All leads matching ``where`` (``{}`` = every *active* lead), lazily, ordered by id.
        A lead deactivated or deleted during the scan cannot make another one be skipped."""
        params: dict[str, Any] = {"where": dict(where or {})}
        if fields:
            params["fields"] = list(dict.fromkeys(["id", *fields]))
        return self._scan("getLeads", params, "lead")

    def _by_keys(
        self,
        method: str,
        result_key: str,
        where_key: str,
        values: Sequence[Any],
        *,
        fields: Sequence[str] | None = None,
        norm: Callable[[str], str] = str,
    ) -> list[dict[str, Any]]:
        """Records whose ``where_key`` (unique) is in ``values``: chunks of 500 values, one call
        each, in the order asked; values not found are simply absent."""
        wanted = list(
            dict.fromkeys(k for k in (norm(str(v)) for v in values if v is not None) if k)
        )
        found: dict[str, dict[str, Any]] = {}
        extra: dict[str, Any] = {}
        if fields:
            extra["fields"] = list(dict.fromkeys([where_key, *fields]))
        for start in range(0, len(wanted), MAX_OBJECTS_PER_CALL):
            chunk = wanted[start : start + MAX_OBJECTS_PER_CALL]
            params = {"where": {where_key: chunk}, "limit": MAX_PAGE_SIZE, "offset": 0, **extra}
            for row in self._rows(method, self.call(method, params), result_key):
                clean_row(row, self.zone)
                found[norm(str(row.get(where_key, "")))] = row
        return [found[v] for v in wanted if v in found]

    def get_leads_by_ids(
        self, ids: Sequence[str | int], fields: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """Leads by id in chunks of 500, inactive ones included, in the order asked (missing ids
        are simply absent)."""
        return self._by_keys("getLeads", "lead", "id", ids, fields=fields)

    def get_leads_by_emails(
        self, emails: Sequence[str], fields: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """Leads by email in chunks of 500, inactive ones included. Emails are trimmed and
        lower-cased before they are sent (the API matches case-insensitively, but not across
        stray blanks), in the order asked."""
        return self._by_keys(
            "getLeads",
            "lead",
            "emailAddress",
            emails,
            fields=fields,
            norm=lambda e: e.strip().lower(),
        )

    def get_leads_date_range(
        self,
        start: datetime,
        end: datetime,
        timestamp: str = "update",
        fields: Sequence[str] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Active leads created/updated in ``[start, end]`` (whole seconds, both inclusive; aware
        datetimes), each once, none skipped however the window changes while it is read (a
        lead edited meanwhile may move out of the window: the next window has it)."""
        extra = {"fields": list(dict.fromkeys(["id", *fields]))} if fields else None
        return self._range("getLeadsDateRange", "lead", start, end, timestamp, extra)

    # -- schema, users, catalogues -------------------------------------------------------

    def get_fields(self) -> list[dict[str, Any]]:
        """Standard and custom fields of leads, opportunities and accounts (read once per client,
        or given by :meth:`remember_fields` from a cache)."""
        if self._fields is None:
            self._fields = list(self._scan("getFields", {"where": {}}, "field"))
            self.fields_read = True
        return [dict(f) for f in self._fields]

    def remember_fields(self, fields: list[dict[str, Any]]) -> None:
        """Use ``fields`` (a cached getFields answer) instead of asking the API."""
        if self._fields is None:
            self._fields = [dict(f) for f in fields]

    def forget_fields(self) -> None:
        """Drop the field list this client holds (the next ``get_fields`` asks the API)."""
        self._fields = None

    def get_user_profiles(self) -> list[dict[str, Any]]:
        return list(self._scan("getUserProfiles", {"where": {}}, "userProfile"))

    def get_deal_stages(self) -> list[dict[str, Any]]:
        return list(self._scan("getDealStages", {"where": {}}, "dealStage"))

    def get_deal_stage(self, stage_id: str | int) -> dict[str, Any] | None:
        return self._one("getDealStage", "dealStage", stage_id)

    def get_campaigns(self) -> list[dict[str, Any]]:
        return list(self._scan("getCampaigns", {"where": {}}, "campaign"))

    def get_campaign(self, campaign_id: str | int) -> dict[str, Any] | None:
        return self._one("getCampaign", "campaign", campaign_id)

    # -- accounts, opportunities, opportunity leads ----------------------------------------

    def get_account(self, account_id: str | int) -> dict[str, Any] | None:
        return self._one("getAccount", "account", account_id)

    def get_accounts(self, where: Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        return self._scan("getAccounts", {"where": dict(where or {})}, "account")

    def get_accounts_by_ids(self, ids: Sequence[str | int]) -> list[dict[str, Any]]:
        """Accounts by id, up to 500 per call (``where.id`` takes a list), in the order asked."""
        return self._by_keys("getAccounts", "account", "id", ids)

    def get_accounts_date_range(
        self, start: datetime, end: datetime, timestamp: str = "update"
    ) -> Iterator[dict[str, Any]]:
        return self._range("getAccountsDateRange", "account", start, end, timestamp)

    def get_opportunity(self, opportunity_id: str | int) -> dict[str, Any] | None:
        return self._one("getOpportunity", "opportunity", opportunity_id)

    def get_opportunities(self, where: Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        return self._scan("getOpportunities", {"where": dict(where or {})}, "opportunity")

    def get_opportunities_by_ids(self, ids: Sequence[str | int]) -> list[dict[str, Any]]:
        """Opportunities by id, up to 500 per call, in the order asked."""
        return self._by_keys("getOpportunities", "opportunity", "id", ids)

    def get_opportunities_date_range(
        self, start: datetime, end: datetime, timestamp: str = "update"
    ) -> Iterator[dict[str, Any]]:
        return self._range("getOpportunitiesDateRange", "opportunity", start, end, timestamp)

    def get_opportunity_lead(self, opportunity_lead_id: str | int) -> dict[str, Any] | None:
        return self._one("getOpportunityLead", "opportunityLead", opportunity_lead_id)

    def get_opportunity_leads(self, where: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        # The real result key is the generator artifact "getWhereopportunityLeads".
        params = {"where": dict(where or {})}
        return list(self._scan("getOpportunityLeads", params, "getWhereopportunityLeads"))

    def get_opportunity_leads_by_ids(self, ids: Sequence[str | int]) -> list[dict[str, Any]]:
        """Opportunity leads (memberships) by their own id, up to 500 per call."""
        return self._by_keys("getOpportunityLeads", "getWhereopportunityLeads", "id", ids)

    def get_opportunity_leads_by_opportunity_ids(
        self, opportunity_ids: Sequence[str | int]
    ) -> list[dict[str, Any]]:
        """Every membership of the given opportunities: up to 500 opportunity ids per query
        (``where.opportunityID`` list), each query paged; ordered by membership id per query."""
        wanted = list(dict.fromkeys(str(i) for i in opportunity_ids if i not in (None, "")))
        out: list[dict[str, Any]] = []
        for start in range(0, len(wanted), MAX_OBJECTS_PER_CALL):
            where = {"opportunityID": wanted[start : start + MAX_OBJECTS_PER_CALL]}
            out.extend(self.get_opportunity_leads(where))
        return out

    # -- marketing ------------------------------------------------------------------------

    def get_events(
        self,
        since: datetime,
        until: datetime | None = None,
        *,
        lead_id: str | int | None = None,
        event_source: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Marketing events with ``since <= createTimestamp <= until`` (UTC), ordered by id,
        none skipped (``paging.id_walk``).

        ``where.createTimestamp`` is the lower bound; ``until`` goes out as ``endDate`` so the
        API reads only the window (an old hour's backfill does not read every event since).
        The client also applies ``until`` itself, and if the API refuses ``endDate`` it stops
        sending it. Event ``id`` is the stable identity to key idempotent writes on.
        """
        where: dict[str, Any] = {"createTimestamp": format_for_api(since, "since", self.zone)}
        if lead_id is not None:
            where["leadID"] = str(lead_id)
        if event_source is not None:
            where["eventSource"] = event_source
        params: dict[str, Any] = {"where": where}
        if until is not None and self._events_upper_bound:
            params["endDate"] = format_for_api(until, "until", self.zone)
        inside = self._event_filter(since, until)
        started = False
        try:
            for event in self._scan("getEvents", params, "event"):
                started = True
                if inside(event):
                    yield event
            return
        except LeadGenApiError as exc:
            if started or "endDate" not in params or exc.code != 205 or "endDate" not in str(exc):
                raise
        log.warning("Lead Gen & CRM getEvents refuses endDate; applying the upper bound locally")
        self._events_upper_bound = False
        params.pop("endDate")
        yield from filter(inside, self._scan("getEvents", params, "event"))

    @staticmethod
    def _event_filter(since: datetime, until: datetime | None) -> Callable[[dict[str, Any]], bool]:
        """``since <= createTimestamp <= until`` on the client's UTC text (the API's own bounds
        are applied in the account zone; this keeps the window exact either way)."""
        lower = format_for_api(since, "since", UTC)
        upper = format_for_api(until, "until", UTC) if until is not None else None

        def inside(event: dict[str, Any]) -> bool:
            stamp = str(event.get("createTimestamp") or "")
            return stamp >= lower and (upper is None or stamp <= upper)

        return inside

    def get_lead_timeline(self, lead_id: str | int) -> list[dict[str, Any]]:
        """The lead's "life of the lead" rows (no ids: use get_events for identity)."""
        params = {"where": {"whoID": str(lead_id)}}
        return list(self._offset_pages("getLeadTimeline", params, "leadTimeline"))

    def get_email_listing(self) -> list[dict[str, Any]]:
        return list(self._scan("getEmailListing", {"where": {}}, "getAllemailListings"))

    def get_email_jobs(self) -> list[dict[str, Any]]:
        return list(self._scan("getEmailJobs", {}, "getAllgetEmailJobss"))

    def get_email_events(self, email_job_id: str | int, event_type: str) -> list[dict[str, Any]]:
        """Rows of one send: ``event_type`` in sends, opens, clicks, bounces, unsubscribes.
        No ids, append-only: plain offset paging."""
        params = {"emailJobID": str(email_job_id), "eventType": event_type}
        return list(self._offset_pages("getEmailEvents", params, "lead"))

    def get_active_lists(self) -> list[dict[str, Any]]:
        return list(self._scan("getActiveLists", {"where": {}}, "activeList"))

    def get_list_members(self, list_id: str | int) -> list[dict[str, Any]]:
        params = {"where": {"id": str(list_id)}}
        return list(self._scan("getListMembers", params, "getWherelistMemberGets"))
