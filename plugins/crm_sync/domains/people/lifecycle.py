"""Where a linked person went since the last run: the link follows the Salesforce record through
its lifecycle.

* A converted Lead hands the link to its ``ConvertedContactId``; a record merged away hands it
  to its ``MasterRecordId`` (followed to the end of the chain).
* A deleted record deactivates the lead (``active=0``) and marks the link deleted; an undeleted
  record restores the link; a deactivated lead that comes back (form fill, re-import) gets a
  fresh Salesforce record and the link is re-pointed.
* Two leads ending on one Salesforce record (a merge of two linked records) park the merged-away
  link as a ``collision``: syncing both would make them overwrite each other there every run.
* A link whose created record an undo removed (``undone``: the Salesforce record deleted or the
  lead deactivated) is left alone -- the records the undone run wrote come back in the next
  window's overlap, unchanged -- until the lead changes after the undo; an active lead then
  comes back as after a delete (its Salesforce record restored, or a fresh one).

Each rule is one handler, chosen by the link's status (:data:`HANDLERS`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from crm_sync.domains.people.pairs import Pair, event, make_pair
from crm_sync.domains.people.rules import DOMAIN, is_active, is_contact, sf_object_of, target_object
from crm_sync.pipeline.transform import parse_lg_timestamp, truthy

if TYPE_CHECKING:
    from crm_sync.domains.people.matcher import Matcher
    from crm_sync.state.models import Link

MAX_DEPTH = 5


def follow(
    m: Matcher, rec: dict[str, Any], depth: int = 0
) -> tuple[dict[str, Any] | None, list[dict[str, Any]], str | None]:
    """Follow a linked Salesforce record through conversion and merges.

    Returns (current target record or None if deleted, events, link change kind)."""
    if depth > MAX_DEPTH:
        return None, [{"event": "lifecycle_loop", "detail": rec["Id"]}], "deleted"
    if truthy(rec.get("IsDeleted")):
        master = rec.get("MasterRecordId")
        if not master:
            gone = event("deleted", f"{rec['Id']} deleted in Salesforce", old_sf_id=rec["Id"])
            return None, [gone], "deleted"
        merged = event(
            "merged", f"{rec['Id']} merged into {master}", old_sf_id=rec["Id"], new_sf_id=master
        )
        return _follow_to(m, master, merged, "merged", depth)
    if truthy(rec.get("IsConverted")) and rec.get("ConvertedContactId"):
        cid = rec["ConvertedContactId"]
        converted = event(
            "converted",
            f"Lead {rec['Id']} converted to Contact {cid}",
            old_sf_id=rec["Id"],
            new_sf_id=cid,
        )
        return _follow_to(m, cid, converted, "converted", depth)
    return rec, [], None


def _follow_to(
    m: Matcher, sf_id: str, first: dict[str, Any], change: str, depth: int
) -> tuple[dict[str, Any] | None, list[dict[str, Any]], str | None]:
    target = m.sf_by_ids([sf_id]).get(sf_id)
    if target is None:
        return None, [first], "deleted"
    t, more, _ = follow(m, target, depth + 1)
    return t, [first, *more], change


def _of_link(lg_rec: dict[str, Any] | None, link: Link, **extra: Any) -> Pair:
    """A pair for an existing link (its Salesforce record filled in by the caller)."""
    return make_pair(
        f"lg:{link.lg_id}",
        lg=lg_rec,
        sf=None,
        sf_object=link.sf_object,
        link=link.as_dict(),
        match="link",
        **extra,
    )


def linked_pair(
    m: Matcher, lg_rec: dict[str, Any] | None, link: Link, sf_rec: dict[str, Any] | None
) -> Pair | None:
    """A pair for an existing link, after following the Salesforce record's lifecycle (None:
    nothing to do for it this run)."""
    m.covered_lg.add(link.lg_id)
    m.covered_sf.add(link.sf_id)
    pair = _of_link(lg_rec, link)
    if sf_rec is None:
        sf_rec = {"Id": link.sf_id, "IsDeleted": True}  # purged from the recycle bin
    return HANDLERS[link.status](m, pair, link, sf_rec)


def _was_deleted(m: Matcher, pair: Pair, link: Link, sf_rec: dict[str, Any]) -> Pair | None:
    """The link was marked deleted by an earlier run: undeleted in Salesforce brings the old link
    back; the lead active again in Lead Gen & CRM gets a fresh Salesforce record."""
    lg_rec = pair["lg"]
    if not truthy(sf_rec.get("IsDeleted")):
        pair["events"].append(event("undeleted", f"{link.sf_id} restored from the recycle bin"))
        pair["link_change"] = {
            "kind": "undeleted",
            "sf_id": sf_rec["Id"],
            "sf_object": sf_object_of(sf_rec["Id"]),
        }
        if lg_rec is not None and not is_active(lg_rec):
            pair["lg_extra"].append({"active": "1"})
        target, events, _ = follow(m, sf_rec)
        pair["events"] += events
        if target is None:
            return None
        pair["sf"], pair["sf_object"] = target, sf_object_of(target["Id"])
        return pair
    if lg_rec is not None and is_active(lg_rec):
        pair.update(sf_object=target_object(lg_rec), match="reactivated")
        pair["link_change"] = {"kind": "relinked"}
        pair["events"].append(
            event(
                "reactivated",
                f"lead {link.lg_id} active again; creating a new Salesforce record",
            )
        )
        return pair
    return None  # still deleted and inactive: nothing to do, never re-created on its own


def _was_undone(m: Matcher, pair: Pair, link: Link, sf_rec: dict[str, Any]) -> Pair | None:
    """The link was undone (see the module docstring): nothing to do until the lead changed
    after the undo (its ``updateTimestamp`` is later than the link's)."""
    lg_rec = pair["lg"] or m.lg_by_ids([link.lg_id]).get(link.lg_id)
    if lg_rec is None or not is_active(lg_rec):
        return None
    changed = parse_lg_timestamp(lg_rec.get("updateTimestamp"))
    if changed is None or changed.replace(tzinfo=None) <= link.updated_at:
        return None
    pair["lg"] = lg_rec
    pair["events"].append(event("undo_resumed", f"lead {link.lg_id} changed after the undo"))
    return _was_deleted(m, pair, link, sf_rec)


def _is_active(m: Matcher, pair: Pair, link: Link, sf_rec: dict[str, Any]) -> Pair | None:
    """The link is active: follow conversion and merges; deleted -> deactivate the lead."""
    target, events, change = follow(m, sf_rec)
    pair["events"] += events
    if target is None:
        return _deactivate(pair, link)
    m.covered_sf.add(target["Id"])
    pair["sf"], pair["sf_object"] = target, sf_object_of(target["Id"])
    if change in ("converted", "merged"):
        pair["link_change"] = {
            "kind": change,
            "sf_id": target["Id"],
            "sf_object": pair["sf_object"],
        }
        if _collides(m, pair, link, target["Id"]):
            return pair
    lg_rec = pair["lg"]
    if pair["sf_object"] == "Contact" and lg_rec is not None and not is_contact(lg_rec):
        pair["lg_extra"].append({"leadStatus": "contact"})
        pair["events"].append(
            event("became_contact", f"lead {link.lg_id} is a Contact in Salesforce")
        )
    if pair["lg"] is None:
        pair["lg"] = m.lg_by_ids([link.lg_id]).get(link.lg_id)
        if pair["lg"] is None:
            pair["events"].append(
                event("leadgen_missing", f"lead {link.lg_id} no longer exists in Lead Gen & CRM")
            )
            return None
    return pair


def _deactivate(pair: Pair, link: Link) -> Pair:
    """Deleted in Salesforce -> deactivate in Lead Gen & CRM, never re-create."""
    pair.update(skip_fields=True, link_change={"kind": "deleted"})
    lg_rec = pair["lg"]
    if lg_rec is None or is_active(lg_rec):
        pair["lg_extra"].append({"active": "0"})
        if lg_rec is None:
            pair["lg"] = {"id": link.lg_id}
    return pair


def _collides(m: Matcher, pair: Pair, link: Link, target_id: str) -> bool:
    """Two leads now stand for one Salesforce record: park this link as a collision (reported
    every run) until someone merges the leads."""
    others = [
        lk
        for lk in m.store.links_by_sf(DOMAIN, [target_id], active_only=True).get(target_id, [])
        if lk.lg_id != link.lg_id
    ]
    if not others:
        return False
    pair["events"].append(
        event(
            "merge_collision",
            f"leads {link.lg_id} and {', '.join(o.lg_id for o in others)} now point at "
            f"{target_id}; review and merge them in Lead Gen & CRM",
        )
    )
    pair["link_change"] = {**pair["link_change"], "kind": "merge_collision"}
    pair["skip_fields"] = True
    pair["lg_extra"] = []
    return True


def parked_pair(lg_rec: dict[str, Any], link: Link) -> Pair:
    """A link parked as a collision earlier: reported again, not synced."""
    return _of_link(
        lg_rec,
        link,
        skip_fields=True,
        events=[
            event(
                "merge_collision",
                f"lead {link.lg_id} shares Salesforce {link.sf_id} with another lead since a "
                "merge; not synced until resolved",
            )
        ],
    )


HANDLERS: dict[str, Callable[[Matcher, Pair, Link, dict[str, Any]], Pair | None]] = {
    "active": _is_active,
    "deleted": _was_deleted,
    "undone": _was_undone,
}
