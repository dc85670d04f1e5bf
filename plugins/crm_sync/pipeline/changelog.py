"""The change log: every field a run overwrites (before and after) and every record it creates,
kept per run in the state store (``change_log``) for Sync health and for undo (``crm_sync.undo``).

A load stage hands each written batch to a :class:`ChangeLog` together with the batch's results::

    changes = ChangeLog(rt.store, ctx, "leadgen", prefix="lg")   # once per load task
    changes.sending(batch)                                     # right before the write
    changes.log(batch, rows, obj="lead")                       # after it, before the results

Only successful writes are logged, one entry per (run, system, record, field), so a retried load
logs nothing twice. The *before* value of an update is what the run's plan saw on the target
record: plans carry it as ``<prefix>_before`` (field -> ``{"value"}``, plus the mapping ``key``
and its canonical ``canon`` value when the field is a synced one, or ``kept``: why an undo never
restores it) -- :func:`attach_before` fills it from the pairs for reconcile plans,
:func:`before_values` from any record. A field written without a recorded before value is
logged as ``kept``. A create is logged once, as ``create``, when the run made the record: the
system said so, or the record was in flight when an earlier attempt of the task died (its
answer was lost, and the retry found it applied); a create that met a record that was there
already is logged as ``existing``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from crm_sync.pipeline.context import RunContext
from crm_sync.pipeline.transform import canonicalize_leadgen, canonicalize_salesforce

if TYPE_CHECKING:
    from crm_sync.pipeline.reconcile import ReconcileContext
    from crm_sync.pipeline.results import ResultRow
    from crm_sync.state.store import SyncStore

SALESFORCE, LEADGEN = "salesforce", "leadgen"
UPDATE, CREATE, EXISTING, KEPT, DELETED, REMOVED = (
    "update",
    "create",
    "existing",
    "kept",
    "deleted",
    "removed",
)
ID_KEYS = ("Id", "id")
Plan = dict[str, Any]


def _clean(v: Any) -> Any:
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NaT:
        return None
    return v


def before_values(
    payload: Mapping[str, Any], record: Mapping[str, Any] | None
) -> dict[str, dict[str, Any]]:
    """``<prefix>_before`` for a write of ``payload`` to ``record`` (as read before the write):
    the record's raw value of every field the payload writes."""
    rec = record or {}
    return {f: {"value": rec.get(f)} for f in payload if f not in ID_KEYS}


def attach_before(
    plans: list[Plan], pairs: Iterable[Mapping[str, Any]], rctx: ReconcileContext
) -> None:
    """Give every update of ``plans`` (reconcile output, as dicts) its ``sf_before`` /
    ``lg_before``: the target record's raw values from its pair, and for mapped fields the
    mapping key and canonical value (what an undo restores the link's synced value to).
    Fields a spec does not map (the record link, lifecycle flags) are ``kept``."""
    by_pair = {p["pair"]: p for p in pairs}
    for prefix, side, reason in (("sf", "sf", "record link"), ("lg", "lg", "lifecycle")):
        groups: dict[str, list[Plan]] = {}
        for plan in plans:
            if plan.get(f"{prefix}_op") == "update" and by_pair.get(plan["pair"], {}).get(side):
                groups.setdefault(plan["sf_object"], []).append(plan)
        for sobject, group in groups.items():
            spec = rctx.specs[sobject]
            records = [by_pair[p["pair"]][side] for p in group]
            if side == "sf":
                canon = canonicalize_salesforce(pd.DataFrame(records), spec, rctx.schema)
                ids, fields = canon["_sf_id"], {r.salesforce: r.key for r in spec.synced_fields}
            else:
                canon = canonicalize_leadgen(pd.DataFrame(records), spec, rctx.schema, rctx.owners)
                ids, fields = canon["_lg_id"], {r.leadgen: r.key for r in spec.synced_fields}
            rows = dict(zip((str(i) for i in ids), canon.to_dict("records"), strict=True))
            for plan, raw in zip(group, records, strict=True):
                values = rows[str(raw.get("Id") if side == "sf" else raw.get("id"))]
                before = before_values(plan[f"{prefix}_payload"], raw)
                for name, entry in before.items():
                    key = fields.get(name)
                    if key is None:
                        entry["kept"] = reason
                    else:
                        entry.update(key=key, canon=_clean(values.get(key)))
                plan[f"{prefix}_before"] = before


class ChangeLog:
    """The change log of one system, for one load task (see the module docstring).

    ``prefix`` names the plan keys of the side (``<prefix>_payload``, ``<prefix>_before``,
    ``agreed_if_<prefix>``); ``link_domain`` the state-store links the plans pair (their
    ``lg_id``), so an undo can set the links' synced values; ``key`` the plan key the results
    answer (``row["pair"]``).
    """

    def __init__(
        self,
        store: SyncStore,
        ctx: RunContext,
        system: str,
        *,
        prefix: str,
        link_domain: str | None = None,
        key: str = "pair",
    ):
        self.store, self.ctx, self.system = store, ctx, system
        self.prefix, self.link_domain, self.key = prefix, link_domain, key
        self._inflight = f"changes/inflight_{system}.json"
        # The creates an earlier attempt of this task was sending when it died: if a retry finds
        # them already applied, this run made them.
        found = ctx.folder.read_json(self._inflight, default=None) or {}
        self.leftover = frozenset(found.get("keys") or ())

    def sending(self, batch: Sequence[Plan]) -> None:
        """Call right before ``batch`` is written: remembers its creates (see ``leftover``)."""
        keys = [p[self.key] for p in batch if p.get(f"{self.prefix}_op") in ("create", "upsert")]
        if keys and not self.ctx.dry_run:
            self.ctx.folder.write_json(self._inflight, {"keys": keys})

    def log(
        self,
        batch: Sequence[Plan],
        rows: Sequence[ResultRow],
        *,
        obj: str | Callable[[Plan], str],
    ) -> int:
        """Log the successful writes of ``batch`` (``rows``: its results, any order); returns
        how many entries were new. Call it before the results are appended, so a task that
        dies in between writes the batch again and logs it then."""
        if self.ctx.dry_run:
            return 0
        answers = {r["pair"]: r for r in rows}
        entries = [
            e
            for plan in batch
            if (row := answers.get(plan[self.key])) is not None and row["success"]
            for e in self.entries(plan, row, obj if isinstance(obj, str) else obj(plan))
        ]
        return self.store.log_changes(entries) if entries else 0

    def entries(self, plan: Plan, row: ResultRow, obj: str) -> list[dict[str, Any]]:
        """The change-log entries of one successful write."""
        payload = plan.get(f"{self.prefix}_payload") or {}
        op = row["op"]
        if op in ("create", "upsert"):
            return [self._created(plan, row, obj, payload)]
        rid = row.get("id") or next((payload[k] for k in ID_KEYS if payload.get(k)), None)
        if rid is None:
            return []
        if op == "delete":
            return [self._entry(obj, rid, "", DELETED, None, None, {})]
        if op != "update":
            return []  # present, dry_run: nothing written
        before = plan.get(f"{self.prefix}_before") or {}
        agreed = plan.get(f"agreed_if_{self.prefix}") or {}
        lg_id = str(rid) if self.system == LEADGEN else plan.get("lg_id")
        out = []
        for name, value in payload.items():
            if name in ID_KEYS:
                continue
            seen = before.get(name)
            if seen is None or seen.get("kept"):
                why = seen.get("kept") if seen else "before value not recorded"
                prior = seen.get("value") if seen else None
                out.append(self._entry(obj, rid, name, KEPT, prior, value, {"why": why}))
                continue
            meta: dict[str, Any] = {}
            if seen.get("key") and self.link_domain and lg_id:
                after = agreed.get(seen["key"])
                meta = {
                    "domain": self.link_domain,
                    "lg_id": str(lg_id),
                    "key": seen["key"],
                    "before": seen.get("canon"),
                    "after": after,
                    "other": after,  # a sync run makes the target equal to the other side
                }
            out.append(self._entry(obj, rid, name, UPDATE, seen.get("value"), value, meta))
        return out

    def _created(self, plan: Plan, row: ResultRow, obj: str, payload: Mapping[str, Any]) -> dict:
        rid = str(row.get("id") or "")
        made = (
            (row.get("created") is not False and not row.get("already_existed"))
            or bool(row.get("adopted"))  # a lost answer resolved by a lookup in this attempt
            or plan[self.key] in self.leftover
        )
        lg_id = rid if self.system == LEADGEN else plan.get("lg_id")
        meta = {"domain": self.link_domain, "lg_id": str(lg_id)} if self.link_domain else {}
        after = {k: v for k, v in payload.items() if k not in ID_KEYS}
        return self._entry(obj, rid, "", CREATE if made else EXISTING, None, after, meta)

    def _entry(
        self, obj: str, rid: Any, name: str, kind: str, before: Any, after: Any, meta: dict
    ) -> dict[str, Any]:
        return {
            "dag_id": self.ctx.dag_id,
            "run_id": self.ctx.run_id,
            "system": self.system,
            "object": obj,
            "record_id": str(rid),
            "field": name,
            "kind": kind,
            "before": before,
            "after": after,
            "meta": meta,
        }
