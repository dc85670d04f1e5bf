"""The schemas of both systems (Salesforce describes, Lead Gen & CRM getFields), kept between
runs for a while: an hourly run should not describe five objects every hour.

An entry is used while it is younger than the TTL (``CRM_SYNC_SCHEMA_TTL_MINUTES``, default 60;
0 turns the cache off) **and** no write was refused for a schema reason since it was stored
(:data:`~crm_sync.clients.results.SCHEMA_ERROR_CODES`, read from the quarantine, where every
refused record keeps its error code and the time of its last refusal): a field deleted, made
read-only or shortened in Setup shows up as refused writes, and the next run describes again,
so its spec check fails loudly instead of trusting an old answer.

Entries are keyed by the client's identity (which org, which account) and kept in a
:class:`CacheBackend` — the state store, so every worker of a cluster shares them and one
invalidation reaches all. The clients themselves keep what they read or were given for their
own life (one task).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

from crm_sync.clients.results import SCHEMA_ERROR_CODES
from crm_sync.errors import ConfigError

log = logging.getLogger(__name__)

LG_FIELDS = "getFields"
DESCRIBE = "describe:"
T = TypeVar("T")


class CacheBackend(Protocol):
    """Where entries live (:class:`crm_sync.state.store.SyncStore` is one)."""

    def cache_fresh(self, scope: str, newer_than: datetime) -> dict[str, Any]: ...

    def cache_put(self, scope: str, entries: Mapping[str, Any]) -> int: ...

    def cache_drop(self, scope: str | None = None) -> int: ...

    def last_refusal(self, error_codes: Iterable[str]) -> datetime | None: ...


class SchemaCache:
    """Prime a pair of clients with the fresh schemas of their systems; keep what they read."""

    def __init__(self, backend: CacheBackend, ttl: timedelta, *, now: datetime | None = None):
        self.backend = backend
        self.ttl = ttl
        self.now = now or datetime.now(UTC)
        self.used: dict[str, int] = {"cached": 0, "stored": 0}

    @property
    def enabled(self) -> bool:
        return self.ttl > timedelta(0)

    def _oldest_usable(self) -> datetime:
        """Entries stored before this are stale: older than the TTL, or older than the last
        write refused for a schema reason."""
        oldest = self.now - self.ttl
        refused = self.backend.last_refusal(SCHEMA_ERROR_CODES)
        if refused is not None and refused > oldest:
            log.info("schema cache: a write was refused for a schema reason at %s", refused)
            oldest = refused
        return oldest

    def prime(self, sf: Any | None, lg: Any | None) -> int:
        """Give the clients every fresh cached schema of their systems; how many entries."""
        if not self.enabled:
            return 0
        oldest = self._oldest_usable()
        n = 0
        if sf is not None:
            for name, describe in self.backend.cache_fresh(_scope(sf), oldest).items():
                sf.remember_describe(name.removeprefix(DESCRIBE), describe)
                n += 1
        if lg is not None:
            fields = self.backend.cache_fresh(_scope(lg), oldest).get(LG_FIELDS)
            if fields is not None:
                lg.remember_fields(fields)
                n += 1
        self.used["cached"] += n
        return n

    def keep(self, sf: Any | None, lg: Any | None) -> int:
        """Store the schemas the clients read from the APIs (not those they were given)."""
        if not self.enabled:
            return 0
        n = 0
        if sf is not None:
            describes = {DESCRIBE + o: sf.describe(o) for o in sorted(sf.described)}
            n += self.backend.cache_put(_scope(sf), describes)
            sf.described.clear()
        if lg is not None and lg.fields_read:
            n += self.backend.cache_put(_scope(lg), {LG_FIELDS: lg.get_fields()})
            lg.fields_read = False
        self.used["stored"] += n
        return n

    def invalidate(self) -> int:
        """Forget every cached schema (of every connection)."""
        return self.backend.cache_drop()

    def checked(self, sf: Any | None, lg: Any | None, step: Callable[[], T]) -> T:
        """Run ``step`` (it reads schemas through the clients and checks specs against them).
        If a check fails (:class:`ConfigError`) while cached schemas were in use, they may be
        what is wrong (a field added in Setup since): forget them and run ``step`` once more
        against the live systems."""
        try:
            return step()
        except ConfigError:
            if not self.used["cached"]:
                raise
        log.info("schema check failed on cached schemas: describing both systems again")
        self.invalidate()
        self.used["cached"] = 0
        if sf is not None:
            sf.forget_describes()
        if lg is not None:
            lg.forget_fields()
        return step()


def _scope(client: Any) -> str:
    return f"schema:{client.identity}"
