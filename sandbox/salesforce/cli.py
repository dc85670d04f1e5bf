"""Admin CLI: ``python -m sandbox.salesforce admin --url https://127.0.0.1:PORT --ca DIR/cert.pem CMD``.

Every command is one call to the ``/__sandbox__/`` admin API; the JSON answer is printed.
Field values in ``Field=value`` arguments are read as JSON when they parse (``true``, ``12``,
``null``) and as text otherwise.
"""

from __future__ import annotations

import argparse
import json
import ssl
import sys
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote, urlencode


def _fields(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep:
            raise SystemExit(f"expected Field=value, got {pair!r}")
        try:
            out[name] = json.loads(raw)
        except json.JSONDecodeError:
            out[name] = raw
    return out


def _who(args: argparse.Namespace, body: dict[str, Any]) -> dict[str, Any]:
    if getattr(args, "at", None):
        body["_at"] = args.at
    if getattr(args, "as_user", None):
        body["_as"] = args.as_user
    return body


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sandbox.salesforce admin", description=__doc__)
    p.add_argument("--url", required=True, help="https://127.0.0.1:PORT")
    p.add_argument("--ca", required=True, help="the sandbox certificate (DATA_DIR/cert.pem)")
    sub = p.add_subparsers(dest="cmd", required=True)

    sub.add_parser("health")
    s = sub.add_parser("reset", help="wipe data, counters, faults, clock (users and schema stay)")
    s.add_argument("--schema", action="store_true", help="also drop admin-added fields and rules")
    s.add_argument("--sessions", action="store_true", help="also end all sessions")
    s = sub.add_parser("seed", help="load N realistic records")
    s.add_argument("n", type=int, nargs="?", default=0)
    s.add_argument("--seed", type=int, default=42)
    s.add_argument("--defects", action="store_true", help="include deliberately defective rows")
    s.add_argument("--counts", help='per-object counts as JSON, e.g. {"Lead": 100}')
    s.add_argument("--end-at", help="newest timestamp (default: org clock)")
    s.add_argument(
        "--days", type=float, default=365, help="spread of CreatedDate (days before end)"
    )
    s = sub.add_parser("calls", help="API call counts by kind")
    s.add_argument("--reset", action="store_true")
    s = sub.add_parser("limits", help="show or change the daily API allocation")
    s.add_argument("--max", type=int)
    s.add_argument("--used", type=int)
    s = sub.add_parser("clock", help="show, freeze, advance or release the org clock")
    s.add_argument("now", nargs="?", help="freeze at this ISO timestamp")
    s.add_argument("--real", action="store_true", help="back to real time")
    s.add_argument("--advance", type=float, help="move the (frozen) clock by N seconds")
    s = sub.add_parser("faults", help="show or set random faults and latency")
    for flag in ("--rate", "--record-rate", "--latency-ms", "--latency-jitter-ms"):
        s.add_argument(flag, type=float)
    s.add_argument("--kinds")
    s.add_argument("--record-kinds")
    s.add_argument("--seed", type=int)
    s.add_argument("--clear", action="store_true", help="remove rules and random faults")
    s = sub.add_parser("fault-rule", help="fail the next N matching calls (or records)")
    s.add_argument("fault")
    s.add_argument("--count", type=int, default=1)
    s.add_argument("--path", help="regex searched in the request path")
    s.add_argument(
        "--kind", help="call kind: query, query_more, collections, bulk2, sobject, login, ..."
    )
    s.add_argument("--method")
    s.add_argument(
        "--step",
        help="Bulk API 2.0 job step: create, upload, close, poll, results, delete, "
        "query_create, query_poll, query_results",
    )
    s.add_argument("--record", action="store_true", help="a per-record fault (collections/bulk)")
    s.add_argument("--object")
    s.add_argument("--operation", choices=["insert", "update", "delete"])
    s = sub.add_parser("add-field", help="add a custom field")
    s.add_argument("object")
    s.add_argument("name")
    s.add_argument("type")
    s.add_argument("--label")
    s.add_argument("--length", type=int)
    s.add_argument("--precision", type=int)
    s.add_argument("--scale", type=int)
    s.add_argument("--external-id", action="store_true")
    s.add_argument("--unique", action="store_true")
    s.add_argument("--required", action="store_true")
    s.add_argument("--values", help="picklist values, comma separated")
    s.add_argument("--restricted", action="store_true")
    s.add_argument("--reference-to")
    s = sub.add_parser("add-rule", help="add a validation rule")
    s.add_argument("object")
    s.add_argument("name")
    s.add_argument("field")
    group = s.add_mutually_exclusive_group(required=True)
    group.add_argument("--regex")
    group.add_argument("--not-blank", action="store_true")
    s.add_argument("--message", required=True)
    for name in ("create", "update"):
        s = sub.add_parser(name, help=f"{name} a record as a salesperson")
        s.add_argument("object")
        if name == "update":
            s.add_argument("id")
        s.add_argument("fields", nargs="*", help="Field=value")
        s.add_argument("--at")
        s.add_argument("--as", dest="as_user")
    s = sub.add_parser("get", help="read a record (deleted ones too)")
    s.add_argument("object")
    s.add_argument("id")
    for name in ("delete", "undelete"):
        s = sub.add_parser(name)
        s.add_argument("ids", nargs="+")
        s.add_argument("--at")
        s.add_argument("--as", dest="as_user")
    s = sub.add_parser("convert", help="convert a lead")
    s.add_argument("lead_id")
    s.add_argument("--account-id")
    s.add_argument("--contact-id")
    s.add_argument("--no-opportunity", action="store_true")
    s.add_argument("--opportunity-name")
    s.add_argument("--at")
    s.add_argument("--as", dest="as_user")
    s = sub.add_parser("merge", help="merge records into a master")
    s.add_argument("object")
    s.add_argument("master")
    s.add_argument("losers", nargs="+")
    s.add_argument("--at")
    s.add_argument("--as", dest="as_user")
    s = sub.add_parser("purge-recycle-bin")
    s.add_argument("before")
    s = sub.add_parser("sessions")
    s.add_argument("--expire", action="store_true", help="end all sessions")
    sub.add_parser("users")
    s = sub.add_parser("raw", help="any admin call: METHOD PATH [JSON]")
    s.add_argument("method")
    s.add_argument("path", help="e.g. /faults")
    s.add_argument("body", nargs="?")
    _add_access_commands(sub)
    return p


def _bool(text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise argparse.ArgumentTypeError("use true or false")
    return text.lower() == "true"


_PERMISSION_FLAGS = {
    "--api-enabled": "PermissionsApiEnabled",
    "--api-only": "PermissionsApiUserOnly",
    "--modify-all-data": "PermissionsModifyAllData",
    "--view-all-data": "PermissionsViewAllData",
    "--password-never-expires": "PermissionsPasswordNeverExpires",
}


def _add_access_commands(sub: Any) -> None:
    """Commands that change what a preflight check reads (edition, profiles, FLS, fields)."""
    s = sub.add_parser("org", help="show the access model, or set the edition / API access")
    s.add_argument("--edition", help='e.g. "Professional Edition"')
    s.add_argument("--api", type=_bool, help="API access for the org (true/false)")
    for name, help_text in (
        ("profile", "change a profile's permissions or session level"),
        ("permission-set", "create a permission set"),
    ):
        s = sub.add_parser(name, help=help_text)
        s.add_argument("name")
        for flag in _PERMISSION_FLAGS:
            s.add_argument(flag, type=_bool)
    s.add_argument("--label")
    sub.choices["profile"].add_argument(
        "--session-level", help="LOW, STANDARD, HIGH_ASSURANCE or none"
    )
    s = sub.add_parser("assign", help="assign a permission set to a user")
    s.add_argument("user", help="user id, username or email")
    s.add_argument("permission_set")
    s = sub.add_parser("fls", help="field-level security of one field for a profile/permission set")
    s.add_argument("field", help="Object.Field")
    group = s.add_mutually_exclusive_group(required=True)
    group.add_argument("--profile")
    group.add_argument("--permission-set")
    s.add_argument("--access", choices=["edit", "read", "none"], required=True)
    s = sub.add_parser("change-field", help="change a custom field (external id, unique, type)")
    s.add_argument("object")
    s.add_argument("name")
    s.add_argument("--external-id", type=_bool)
    s.add_argument("--unique", type=_bool)
    s.add_argument("--type")
    s.add_argument("--length", type=int)
    s = sub.add_parser("remove-field", help="delete a custom field")
    s.add_argument("object")
    s.add_argument("name")
    s = sub.add_parser("user", help="activate/deactivate a user or change their profile")
    s.add_argument("id")
    s.add_argument("--active", type=_bool)
    s.add_argument("--profile")
    s = sub.add_parser("writes", help="the write log: records the API created/updated/deleted")
    s.add_argument("--entries", action="store_true", help="list the logged writes too")
    s.add_argument("--object")
    s.add_argument("--op", choices=["created", "updated", "deleted"])
    s.add_argument("--reset", action="store_true")


def _access_request(args: argparse.Namespace) -> tuple[str, str, dict[str, Any] | None] | None:
    c = args.cmd
    perms = {
        field: getattr(args, flag[2:].replace("-", "_"), None)
        for flag, field in _PERMISSION_FLAGS.items()
    }
    perms = {k: v for k, v in perms.items() if v is not None}
    if c == "org":
        body = {
            k: v for k, v in (("edition", args.edition), ("api_enabled", args.api)) if v is not None
        }
        return ("POST", "/org", body) if body else ("GET", "/org", None)
    if c == "profile":
        if args.session_level is not None:
            level = args.session_level.upper()
            perms["requiredSessionLevel"] = None if level == "NONE" else level
        return "PATCH", f"/profiles/{quote(args.name)}", perms
    if c == "permission-set":
        return "POST", "/permission-sets", {"Name": args.name, "Label": args.label, **perms}
    if c == "assign":
        return "POST", "/permission-set-assignments", {
            "user": args.user, "permission_set": args.permission_set,
        }  # fmt: skip
    if c == "fls":
        body = {"field": args.field, "read": args.access != "none", "edit": args.access == "edit"}
        body.update(
            {"profile": args.profile} if args.profile else {"permission_set": args.permission_set}
        )
        return "POST", "/field-permissions", body
    if c == "change-field":
        changes = {
            "externalId": args.external_id, "unique": args.unique, "type": args.type,
            "length": args.length,
        }  # fmt: skip
        return (
            "PATCH",
            f"/schema/fields/{quote(args.object)}/{quote(args.name)}",
            {k: v for k, v in changes.items() if v is not None},
        )
    if c == "remove-field":
        return "DELETE", f"/schema/fields/{quote(args.object)}/{quote(args.name)}", None
    if c == "user":
        body = {
            k: v for k, v in (("IsActive", args.active), ("profile", args.profile)) if v is not None
        }
        return "PATCH", f"/users/{quote(args.id)}", body
    if c == "writes":
        if args.reset:
            return "DELETE", "/writes", None
        query = [("entries", "1")] if args.entries else []
        query += [(k, v) for k, v in (("object", args.object), ("op", args.op)) if v]
        return "GET", "/writes" + ("?" + urlencode(query) if query else ""), None
    return None


def _request(args: argparse.Namespace) -> tuple[str, str, dict[str, Any] | None]:
    access = _access_request(args)
    if access is not None:
        return access
    c = args.cmd
    if c == "health":
        return "GET", "/health", None
    if c == "reset":
        return "POST", "/reset", {"schema": args.schema, "sessions": args.sessions}
    if c == "seed":
        body: dict[str, Any] = {
            "n": args.n,
            "seed": args.seed,
            "defects": args.defects,
            "days": args.days,
        }
        if args.counts:
            body["counts"] = json.loads(args.counts)
        if args.end_at:
            body["end_at"] = args.end_at
        return "POST", "/seed", body
    if c == "calls":
        return ("DELETE", "/calls", None) if args.reset else ("GET", "/calls", None)
    if c == "limits":
        if args.max is None and args.used is None:
            return "GET", "/limits", None
        return (
            "POST",
            "/limits",
            {
                k: v
                for k, v in (("daily_api_requests", args.max), ("used", args.used))
                if v is not None
            },
        )
    if c == "clock":
        if args.real:
            return "POST", "/clock", {"now": None}
        if args.now:
            return "POST", "/clock", {"now": args.now}
        if args.advance is not None:
            return "POST", "/clock", {"advance_seconds": args.advance}
        return "GET", "/clock", None
    if c == "faults":
        if args.clear:
            return "DELETE", "/faults", None
        changes = {
            "rate": args.rate, "record_rate": args.record_rate, "latency_ms": args.latency_ms,
            "latency_jitter_ms": args.latency_jitter_ms, "kinds": args.kinds,
            "record_kinds": args.record_kinds, "seed": args.seed,
        }  # fmt: skip
        changes = {k: v for k, v in changes.items() if v is not None}
        return ("POST", "/faults", changes) if changes else ("GET", "/faults", None)
    if c == "fault-rule":
        body = {
            "fault": args.fault,
            "count": args.count,
            "scope": "record" if args.record else "call",
        }
        for key in ("path", "kind", "method", "step", "object", "operation"):
            if getattr(args, key):
                body[key] = getattr(args, key)
        return "POST", "/faults/rules", body
    if c == "add-field":
        body = {"object": args.object, "name": args.name, "type": args.type}
        opt = {
            "label": args.label, "length": args.length, "precision": args.precision, "scale": args.scale,
            "externalId": args.external_id or None, "unique": args.unique or None,
            "required": args.required or None, "restricted": args.restricted or None,
            "picklistValues": args.values.split(",") if args.values else None,
            "referenceTo": [args.reference_to] if args.reference_to else None,
        }  # fmt: skip
        body.update({k: v for k, v in opt.items() if v is not None})
        return "POST", "/schema/fields", body
    if c == "add-rule":
        cond: Any = "not_blank" if args.not_blank else {"regex": args.regex}
        return "POST", "/schema/validation-rules", {
            "object": args.object, "name": args.name, "field": args.field, "condition": cond, "message": args.message,
        }  # fmt: skip
    if c == "create":
        return "POST", f"/records/{quote(args.object)}", _who(args, _fields(args.fields))
    if c == "update":
        return (
            "PATCH",
            f"/records/{quote(args.object)}/{quote(args.id)}",
            _who(args, _fields(args.fields)),
        )
    if c == "get":
        return "GET", f"/records/{quote(args.object)}/{quote(args.id)}", None
    if c in ("delete", "undelete"):
        return "POST", f"/actions/{c}", _who(args, {"ids": args.ids})
    if c == "convert":
        body = {"leadId": args.lead_id, "doNotCreateOpportunity": args.no_opportunity}
        for key, value in (
            ("accountId", args.account_id),
            ("contactId", args.contact_id),
            ("opportunityName", args.opportunity_name),
        ):
            if value:
                body[key] = value
        return "POST", "/actions/convert-lead", _who(args, body)
    if c == "merge":
        return (
            "POST",
            "/actions/merge",
            _who(args, {"object": args.object, "masterId": args.master, "mergeIds": args.losers}),
        )
    if c == "purge-recycle-bin":
        return "POST", "/actions/purge-recycle-bin", {"before": args.before}
    if c == "sessions":
        return ("POST", "/sessions/expire", {}) if args.expire else ("GET", "/sessions", None)
    if c == "users":
        return "GET", "/users", None
    if c == "raw":
        return args.method.upper(), args.path, json.loads(args.body) if args.body else None
    raise SystemExit(f"unknown command {c}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    method, path, body = _request(args)
    url = args.url.rstrip("/") + "/__sandbox__" + path
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    ctx = ssl.create_default_context(cafile=args.ca)
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=600) as resp:
            text = resp.read().decode("utf-8")
            status = resp.status
    except urllib.error.HTTPError as exc:
        text = exc.read().decode("utf-8", "replace")
        status = exc.code
    except urllib.error.URLError as exc:
        print(f"cannot reach {args.url}: {exc.reason}", file=sys.stderr)
        return 2
    try:
        print(json.dumps(json.loads(text), indent=2))
    except json.JSONDecodeError:
        print(text)
    return 0 if status < 400 else 1


if __name__ == "__main__":
    sys.exit(main())
