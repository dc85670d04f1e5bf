"""Invariants of the state store itself: ``double_link``, ``quarantine_without_reason``.

* A record is linked at most once per domain: no Salesforce record with two active links (a merge
  that leaves two leads on one record parks one link as ``collision``), no Lead Gen & CRM record
  with two (the store's unique key forbids it; checked anyway, other databases may lack it), no
  two active memberships for one lead on one opportunity (memberships share their opportunity's
  Salesforce id by design, so they are compared by opportunity and lead).
* Every quarantine row says why it is there: message, check and category are never empty.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import crm_sync.verify._lib as _lib
from crm_sync.verify.model import Violation
from crm_sync.verify.sources import Sources

DOMAIN_DAG = {
    _lib.DOMAIN_PERSON: _lib.DAG_PEOPLE,
    _lib.DOMAIN_OPPORTUNITY: _lib.DAG_OPPORTUNITIES,
    _lib.DOMAIN_ACCOUNT: _lib.DAG_OPPORTUNITIES,
    _lib.DOMAIN_MEMBERSHIP: _lib.DAG_OPPORTUNITIES,
}


def _ids(text: str) -> tuple[str, ...]:
    return tuple(sorted(set(text.split(","))))


def double_links(src: Sources, domains: Iterable[str] | None = None) -> Iterator[Violation]:
    """Two active links to one record, on either side, in ``domains`` (default: all)."""
    src.load_links()
    wanted = set(domains) if domains is not None else None

    def keep(domain: str) -> bool:
        return wanted is None or domain in wanted

    for domain, sf_id, lg_ids in src.snap.rows(
        "SELECT domain, sf_id, group_concat(lg_id) FROM link WHERE status = 'active' "
        "AND domain != ? GROUP BY domain, sf_id HAVING count(*) > 1 ORDER BY domain, sf_id",
        (_lib.DOMAIN_MEMBERSHIP,),
    ):
        if keep(domain):
            leads = _ids(lg_ids)
            why = f"{len(leads)} active {domain} links point at Salesforce {sf_id}"
            yield Violation("double_link", why, leads, (sf_id,), dag=DOMAIN_DAG.get(domain, ""))
    for domain, lg_id, sf_ids in src.snap.rows(
        "SELECT domain, lg_id, group_concat(sf_id) FROM link WHERE status = 'active' "
        "GROUP BY domain, lg_id HAVING count(*) > 1 ORDER BY domain, lg_id"
    ):
        if keep(domain):
            records = _ids(sf_ids)
            why = f"{len(records)} active {domain} links start at Lead Gen & CRM {lg_id}"
            yield Violation("double_link", why, (lg_id,), records, dag=DOMAIN_DAG.get(domain, ""))
    if keep(_lib.DOMAIN_MEMBERSHIP):
        for sf_id, lead, lg_ids in src.snap.rows(
            "SELECT sf_id, lead, group_concat(lg_id) FROM link WHERE status = 'active' "
            "AND domain = ? AND lead IS NOT NULL GROUP BY sf_id, lead HAVING count(*) > 1 "
            "ORDER BY sf_id, lead",
            (_lib.DOMAIN_MEMBERSHIP,),
        ):
            members = _ids(lg_ids)
            why = (
                f"{len(members)} active membership links for lead {lead} on opportunity {sf_id} "
                f"(opportunity leads {', '.join(members)})"
            )
            yield Violation("double_link", why, members, (sf_id,), dag=_lib.DAG_OPPORTUNITIES)


def quarantine_reasons(src: Sources, dags: Iterable[str] | None = None) -> Iterator[Violation]:
    """Quarantine rows (any status) of ``dags`` (default: all) with an empty reason column."""
    wanted = set(dags) if dags is not None else None
    for row in _lib.iter_quarantine(src.store):
        src.read["state_quarantine_rows"] += 1
        if wanted is not None and row.dag_id not in wanted:
            continue
        empty = [
            name
            for name, value in (
                ("message", row.message),
                ("check", row.check),
                ("category", row.category),
            )
            if _lib.is_blank(value)
        ]
        if empty:
            why = (
                f"quarantine row {row.id} ({row.record_key}, {row.status}) has no "
                f"{', '.join(empty)}"
            )
            yield Violation(
                "quarantine_without_reason",
                why,
                (str(row.lg_id),) if row.lg_id else (),
                (str(row.sf_id),) if row.sf_id else (),
                dag=row.dag_id,
            )
