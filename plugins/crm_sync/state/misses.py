"""First-pairing lookups that found nothing (see :class:`~crm_sync.state.models.MatchMiss`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from crm_sync.state._common import _chunks, to_db
from crm_sync.state.models import MatchMiss


class MatchMissStore:
    """Per domain and Lead Gen & CRM id: the email a Salesforce lookup found nothing for, and
    when."""

    session: Callable[[], AbstractContextManager[Session]]

    def misses_since(self, domain: str, lg_ids: Sequence[str], since: datetime) -> dict[str, str]:
        """Lead id -> email of the misses among ``lg_ids`` checked at or after ``since``."""
        out: dict[str, str] = {}
        with self.session() as s:
            for chunk in _chunks(list(dict.fromkeys(lg_ids))):
                q = select(MatchMiss.lg_id, MatchMiss.email).where(
                    MatchMiss.domain == domain,
                    MatchMiss.lg_id.in_(chunk),
                    MatchMiss.checked_at >= to_db(since),
                )
                out.update({lg_id: email for lg_id, email in s.execute(q)})
        return out

    def record_lookups(
        self,
        domain: str,
        asked: Iterable[str],
        misses: Mapping[str, str],
        checked_at: datetime,
    ) -> int:
        """The outcome of lookups made at ``checked_at`` for the ``asked`` lead ids: ``misses``
        (lead id -> email) found nothing and replace what was known of them; the others found
        a record, so no miss of theirs is kept. Returns the misses stored."""
        ids = list(dict.fromkeys([*asked, *misses]))
        if not ids:
            return 0
        at = to_db(checked_at)
        with self.session() as s:
            for chunk in _chunks(ids):
                s.execute(
                    delete(MatchMiss).where(MatchMiss.domain == domain, MatchMiss.lg_id.in_(chunk))
                )
            if misses:
                s.execute(
                    MatchMiss.__table__.insert(),
                    [
                        {"domain": domain, "lg_id": k, "email": v, "checked_at": at}
                        for k, v in misses.items()
                    ],
                )
        return len(misses)

    def prune_misses(self, domain: str, before: datetime) -> int:
        """Forget the misses checked before ``before``: no later window can use them."""
        with self.session() as s:
            q = delete(MatchMiss).where(
                MatchMiss.domain == domain, MatchMiss.checked_at < to_db(before)
            )
            return s.execute(q).rowcount or 0
