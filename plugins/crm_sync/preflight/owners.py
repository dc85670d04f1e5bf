"""Check of ``owners.yaml`` against both systems' users.

Severity follows what the sync does with each case (``crm_sync.mapping.owners``):

* a listed user that does not exist on either side, or a fallback owner that does not exist or
  is inactive in Salesforce -> **fail**: a typo, or every record the sync creates without a mapped
  owner would be refused (``INACTIVE_OWNER_OR_USER``);
* a listed user who exists but is inactive -> **warn**: the sync deliberately leaves such owners
  alone and names them in the run report (owners.yaml may list a former employee on purpose).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from crm_sync.preflight.facts import Facts, Unavailable
from crm_sync.preflight.model import Check, failed, passed, warned

OWNERS_FILE = "include/mappings/owners.yaml"


def _norm(value: Any) -> str:
    return str(value or "").strip().lower()


def _active(user: dict[str, Any]) -> bool:
    return user.get("IsActive", user.get("isActive")) in (True, 1, "1", "true", "True")


def _find(users: list[dict[str, Any]], keys: Iterable[tuple[str, Any]]) -> dict[str, Any] | None:
    """The user whose field matches the first given key (active users first), or None."""
    for field, value in keys:
        if not value:
            continue
        found = [u for u in users if _norm(u.get(field)) == _norm(value)]
        return next((u for u in found if _active(u)), found[0] if found else None)
    return None


def _entry_findings(
    where: str, lg: dict[str, Any] | None, sf: dict[str, Any] | None, lg_who: str, sf_who: str
) -> tuple[list[str], list[str]]:
    """(fails, warnings) for one owners.yaml entry."""
    fails, warns = [], []
    if lg_who and lg is None:
        fails.append(f"{where}: Lead Gen & CRM user {lg_who} does not exist")
    elif lg is not None and not _active(lg):
        warns.append(f"{where}: Lead Gen & CRM user {lg_who} is inactive")
    if sf_who and sf is None:
        fails.append(f"{where}: Salesforce user {sf_who} does not exist")
    elif sf is not None and not _active(sf):
        warns.append(
            f"{where}: Salesforce user {sf.get('Username')} is inactive (its records keep "
            "their owner)"
        )
    return fails, warns


def check_owners(f: Facts) -> Check:
    name = "owners.yaml"
    spec = f.specs.owners
    if spec is None:
        raise Unavailable("not checked: owners.yaml did not load")
    sf_users, lg_users = f.sf_users(), f.lg_users()
    fails: list[str] = []
    warns: list[str] = []
    for i, u in enumerate(spec.users):
        lg_keys = [("id", u.leadgen_id), ("emailAddress", u.leadgen_email)]
        sf_keys = [
            ("Id", u.salesforce_id),
            ("Username", u.salesforce_username),
            ("Email", u.salesforce_email),
        ]
        found = _entry_findings(
            f"users[{i}]",
            _find(lg_users, lg_keys),
            _find(sf_users, sf_keys),
            str(u.leadgen_id or u.leadgen_email or ""),
            str(u.salesforce_id or u.salesforce_username or u.salesforce_email or ""),
        )
        fails += found[0]
        warns += found[1]
    fb = spec.fallback
    if fb is not None:
        sf_who = fb.salesforce_id or fb.salesforce_username
        sf = _find(sf_users, [("Id", fb.salesforce_id), ("Username", fb.salesforce_username)])
        if sf_who and (sf is None or not _active(sf)):
            fails.append(
                f"fallback: Salesforce user {sf_who} does not exist or is inactive (records the "
                "sync creates without a mapped owner would be refused)"
            )
        lg_who = fb.leadgen_id or fb.leadgen_email
        if (
            lg_who
            and _find(lg_users, [("id", fb.leadgen_id), ("emailAddress", fb.leadgen_email)]) is None
        ):
            fails.append(f"fallback: Lead Gen & CRM user {lg_who} does not exist")
    fix = (
        f"correct the entry in {OWNERS_FILE}, or create/reactivate the user (Salesforce: "
        "Setup > Users; Lead Gen & CRM: Settings > Users)"
    )
    if fails:
        return failed(name, "; ".join(fails + warns), fix)
    if warns:
        return warned(name, "; ".join(warns), fix)
    return passed(name, f"{len(spec.users)} listed users exist and are active")
