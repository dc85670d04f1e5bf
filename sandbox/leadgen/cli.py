"""``python -m sandbox.leadgen admin --url http://127.0.0.1:PORT <command>``: drive the admin API.

Prints the JSON answer. Exit status 0 on success, 1 when the sandbox refused the request,
2 on usage errors, 3 when the sandbox cannot be reached.
"""

from __future__ import annotations

import argparse
import json
import ssl
import sys
import urllib.error
import urllib.request
from typing import Any

from . import ADMIN_PREFIX
from .config import FAULT_KINDS, REAL_LIMITS


def _pairs(items: list[str]) -> dict[str, Any]:
    """``field=value`` arguments; ``field=null`` sends JSON null."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"expected field=value, got {item!r}")
        key, value = item.split("=", 1)
        out[key] = None if value == "null" else value
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m sandbox.leadgen admin", description="Lead Gen & CRM sandbox admin"
    )
    p.add_argument("--url", required=True, help="sandbox base URL, e.g. http://127.0.0.1:8766")
    p.add_argument("--cafile", help="CA file for an HTTPS sandbox (its DIR/cert.pem)")
    p.add_argument("--at", help="timestamp to stamp admin writes with (_at)")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("health")
    sub.add_parser("reset").add_argument("--keep-config", action="store_true")
    s = sub.add_parser("seed", help="add N realistic leads with reference data and activity")
    s.add_argument("leads", type=int)
    s.add_argument("--seed", type=int, default=42)
    s.add_argument("--defects", action="store_true", help="add deliberately defective rows")
    s.add_argument("--activity-leads", type=int, default=1000)
    s.add_argument("--inactive", type=int, default=0)
    sub.add_parser("calls").add_argument("--reset", action="store_true")
    c = sub.add_parser("clock", help="show, freeze (NOW), unfreeze (--real) or advance the clock")
    c.add_argument("now", nargs="?")
    c.add_argument("--real", action="store_true")
    c.add_argument("--advance", type=float)
    sub.add_parser("config").add_argument("settings", nargs="*", help="key=value")
    sub.add_parser(
        "limits", help="real: 10 calls/s and 50,000/day like the real API; off: no limits"
    ).add_argument("preset", choices=["real", "off"])
    f = sub.add_parser("fault", help="fail the next COUNT calls of METHOD ('*' = any) with FAULT")
    f.add_argument("method")
    f.add_argument("fault", choices=list(FAULT_KINDS))
    f.add_argument("--count", type=int, default=1)
    f.add_argument(
        "--after", type=int, default=0, help="let this many matching calls through first"
    )
    sub.add_parser("faults").add_argument("--clear", action="store_true")
    h = sub.add_parser("hook", help="before the CALL-th call of METHOD, touch lead ID")
    h.add_argument("method")
    h.add_argument("call", type=int)
    h.add_argument("id", type=int)
    h.add_argument("fields", nargs="*", help="field=value to set (none: bump updateTimestamp)")
    sub.add_parser("hooks").add_argument("--clear", action="store_true")
    sub.add_parser("stats")
    sub.add_parser("lead").add_argument("id", type=int)
    e = sub.add_parser("edit", help="edit a lead as a marketer")
    e.add_argument("--ui", action="store_true", help="store the text as typed in the UI")
    e.add_argument("id", type=int)
    e.add_argument("fields", nargs="+", help="field=value")
    sc = sub.add_parser("score")
    sc.add_argument("id", type=int)
    sc.add_argument("score", type=int)
    sc.add_argument("--weighted", type=int)
    ff = sub.add_parser("form-fill", help="a form submission (creates or reactivates the lead)")
    ff.add_argument("email")
    ff.add_argument("fields", nargs="*", help="field=value")
    ff.add_argument("--form", default="Contact Us")
    ff.add_argument("--page-url")
    im = sub.add_parser("import", help="re-import leads by email (reactivates inactive ones)")
    im.add_argument("emails", nargs="+")
    es = sub.add_parser("email-send")
    es.add_argument("--lead", type=int, action="append", dest="leads")
    es.add_argument("--list", type=int)
    es.add_argument("--email-id", type=int)
    es.add_argument("--subject")
    eo = sub.add_parser("email-open")
    eo.add_argument("lead", type=int)
    eo.add_argument("job", type=int)
    ec = sub.add_parser("email-click")
    ec.add_argument("lead", type=int)
    ec.add_argument("job", type=int)
    ec.add_argument("link")
    pv = sub.add_parser("page-visit")
    pv.add_argument("lead", type=int)
    pv.add_argument("link")
    return p


Request = tuple[str, str, dict[str, Any] | None]


def _control_request(args: argparse.Namespace) -> Request | None:
    """Commands that steer the sandbox (config, limits, faults, hooks); None for the others."""
    cmd = args.command
    if cmd == "config":
        if args.settings:
            return "POST", "/config", _pairs(args.settings)
        return "GET", "/config", None
    if cmd == "limits":
        off = {key: 0 for key in REAL_LIMITS}
        return "POST", "/config", dict(REAL_LIMITS) if args.preset == "real" else off
    if cmd == "hook":
        body = {"method": args.method, "call": args.call, "lead_id": args.id}
        return "POST", "/hooks", {**body, "fields": _pairs(args.fields)}
    if cmd == "fault":
        body = {
            "method": args.method,
            "fault": args.fault,
            "count": args.count,
            "after": args.after,
        }
        return "POST", "/faults", body
    if cmd in ("hooks", "faults"):
        return ("DELETE", f"/{cmd}", {}) if args.clear else ("GET", f"/{cmd}", None)
    return None


def _request(args: argparse.Namespace) -> Request:
    """(HTTP verb, admin path, JSON body) for the parsed command."""
    cmd = args.command
    at = {"_at": args.at} if args.at else {}
    if cmd == "health":
        return "GET", "/health", None
    if cmd == "reset":
        return "POST", "/reset", {"keep_config": args.keep_config}
    if cmd == "seed":
        body = {"leads": args.leads, "seed": args.seed, "defects": args.defects,
                "activity_leads": args.activity_leads, "inactive": args.inactive, **at}  # fmt: skip
        return "POST", "/seed", body
    if cmd == "calls":
        return ("POST", "/calls/reset", {}) if args.reset else ("GET", "/calls", None)
    if cmd == "clock":
        if args.real:
            return "POST", "/clock", {"now": None}
        if args.advance is not None:
            return "POST", "/clock", {"advance_seconds": args.advance}
        return ("POST", "/clock", {"now": args.now}) if args.now else ("GET", "/clock", None)
    control = _control_request(args)
    if control is not None:
        return control
    if cmd == "stats":
        return "GET", "/stats", None
    if cmd == "lead":
        return "GET", f"/leads/{args.id}", None
    if cmd == "edit":
        body = {"fields": _pairs(args.fields), "typed_in_ui": args.ui, **at}
        return "POST", f"/leads/{args.id}", body
    if cmd == "score":
        return (
            "POST",
            f"/leads/{args.id}/score",
            {"leadScore": args.score, "leadScoreWeighted": args.weighted, **at},
        )
    if cmd == "form-fill":
        body = {
            "emailAddress": args.email,
            "formName": args.form,
            "fields": _pairs(args.fields),
            **at,
        }
        if args.page_url:
            body["url"] = args.page_url
        return "POST", "/forms/submit", body
    if cmd == "import":
        return "POST", "/import", {"leads": [{"emailAddress": e} for e in args.emails], **at}
    if cmd == "email-send":
        body = {
            "leadIDs": args.leads,
            "listID": args.list,
            "emailID": args.email_id,
            "subject": args.subject,
            **at,
        }
        return "POST", "/emails/send", {k: v for k, v in body.items() if v is not None}
    if cmd == "email-open":
        return "POST", "/emails/open", {"leadID": args.lead, "emailJobID": args.job, **at}
    if cmd == "email-click":
        return (
            "POST",
            "/emails/click",
            {"leadID": args.lead, "emailJobID": args.job, "url": args.link, **at},
        )
    if cmd == "page-visit":
        return "POST", "/page-visits", {"leadID": args.lead, "url": args.link, **at}
    raise SystemExit(f"unknown command {cmd}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    verb, path, body = _request(args)
    url = args.url.rstrip("/") + ADMIN_PREFIX + path
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url, data=data, method=verb, headers={"Content-Type": "application/json"}
    )
    context = ssl.create_default_context(cafile=args.cafile) if args.cafile else None
    try:
        with urllib.request.urlopen(req, timeout=600, context=context) as resp:
            print(json.dumps(json.loads(resp.read() or b"null"), indent=2, ensure_ascii=False))
            return 0
    except urllib.error.HTTPError as exc:
        print(exc.read().decode(errors="replace"), file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"cannot reach {args.url}: {exc}", file=sys.stderr)
        return 3
