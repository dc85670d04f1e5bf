"""Cached API answers (the schemas: describes, field lists) and what makes them stale."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from crm_sync.state._common import from_db, to_db, utcnow
from crm_sync.state.models import CacheEntry, QuarantineItem


class CacheStore:
    """Entries by scope (whose answers: ``schema:<connection identity>``) and name, each with
    the time it was stored."""

    session: Callable[[], AbstractContextManager[Session]]

    def cache_fresh(self, scope: str, newer_than: datetime) -> dict[str, Any]:
        """Name -> value of the entries of ``scope`` stored after ``newer_than`` (aware UTC)."""
        with self.session() as s:
            rows = s.execute(
                select(CacheEntry.key, CacheEntry.value).where(
                    CacheEntry.scope == scope, CacheEntry.stored_at > to_db(newer_than)
                )
            )
            return {key[len(scope) + 1 :]: value for key, value in rows}

    def cache_put(self, scope: str, entries: Mapping[str, Any]) -> int:
        """Store (or replace) ``entries`` (name -> value) of ``scope``, stamped now."""
        if not entries:
            return 0
        now = utcnow()
        keys = {f"{scope}:{name}": value for name, value in entries.items()}
        with self.session() as s:
            found = {
                e.key: e for e in s.scalars(select(CacheEntry).where(CacheEntry.key.in_(keys)))
            }
            for key, value in keys.items():
                entry = found.get(key)
                if entry is None:
                    s.add(CacheEntry(key=key, scope=scope, value=value, stored_at=now))
                else:
                    entry.value, entry.stored_at = value, now
        return len(entries)

    def cache_drop(self, scope: str | None = None) -> int:
        """Forget the entries of ``scope`` (every entry when None); how many."""
        with self.session() as s:
            q = delete(CacheEntry)
            if scope is not None:
                q = q.where(CacheEntry.scope == scope)
            return s.execute(q).rowcount or 0

    def last_refusal(self, error_codes: Iterable[str]) -> datetime | None:
        """When a write was last refused with one of ``error_codes`` (any DAG, per the
        quarantine: each refused record's row keeps the time it was last refused)."""
        codes = sorted(set(error_codes))
        with self.session() as s:
            v = s.scalar(
                select(func.max(QuarantineItem.last_seen)).where(
                    QuarantineItem.error_code.in_(codes)
                )
            )
            return from_db(v)
