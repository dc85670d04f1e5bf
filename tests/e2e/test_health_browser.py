"""Sync health pages in a real Airflow api-server, seen through headless Chromium.

One ``airflow api-server`` (fresh metadata DB, this repo's plugins, fixed logins admin/admin and
vic/viewer, ``AIRFLOW_CONN_SYNC_STATE`` pointing at a seeded store) serves the whole module. The
browser gets the UI's own login cookie (``_token``, httpOnly, as ``/auth/token/login`` sets it)
and opens the three pages directly and through the Airflow UI's plugin route; the screenshots
for docs/sync-health.md are written on every run. Every page is also laid out at 1280 px and at
600 px and checked for overlapping text, cells, headings and labels (``OVERLAPS_JS``).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from crm_sync.state.store import SyncStore
from tests.e2e.conftest_health import (
    CHROMIUM,
    PEOPLE_DAG,
    REPO_ROOT,
    SECRET_MARK,
    ApiServer,
    Browser,
    run_api_server,
    run_chromium,
)

pytestmark = pytest.mark.browser

# Screenshots land in the docs only when asked (CRM_SYNC_UPDATE_SCREENSHOTS=1): a test run must
# not modify tracked files. Otherwise they go to a temporary folder (and are still taken, so the
# screenshot path is exercised).
IMG_DIR = (
    REPO_ROOT / "docs" / "img"
    if os.environ.get("CRM_SYNC_UPDATE_SCREENSHOTS") == "1"
    else Path(tempfile.mkdtemp(prefix="sync_health_screens_"))
)
COOKIE = "_token"  # airflow.api_fastapi.auth.managers.base_auth_manager.COOKIE_NAME_JWT_TOKEN
WIDTHS = (1280, 600)
SHOWN_PER_LAYOUT = 6  # findings listed per page and width when the check fails  # a laptop window, and a narrow one (a split screen, the UI's side panel)

# What a reader sees drawn over something else, in one layout of the page. The boxes compared:
# every visible text fragment (one rectangle per line, from a Range over the text node), and the
# border boxes of table cells, headings, labels, buttons, badges and form fields. Each box is
# clipped to the ancestors that clip their content (overflow other than visible: a table
# scrolling inside its card is fine, its hidden part is not drawn). Two boxes overlap when they
# share more than TOLERANCE px in both directions and neither contains the other in the DOM (a
# cell holds its text; a cell's text running into the next cell is an overlap). Also reported:
# a page wider than the window (the whole page would scroll sideways).
OVERLAPS_JS = r"""
(() => {
  const TOLERANCE = 1.5;
  const SELECTOR = "th, td, h1, h2, h3, label, button, .button, .badge, summary, input, select";
  const clipOf = (el) => {
    let c = [-Infinity, -Infinity, Infinity, Infinity];
    for (let a = el.parentElement; a && a !== document.documentElement; a = a.parentElement) {
      const cs = getComputedStyle(a);
      if (cs.overflowX !== "visible" || cs.overflowY !== "visible") {
        const r = a.getBoundingClientRect();
        c = [Math.max(c[0], r.left), Math.max(c[1], r.top), Math.min(c[2], r.right), Math.min(c[3], r.bottom)];
      }
    }
    return c;
  };
  const describe = (el) => {
    const cls = el.className && typeof el.className === "string" ? "." + el.className.trim().split(/\s+/).join(".") : "";
    return el.tagName.toLowerCase() + cls;
  };
  const boxes = [];
  const add = (owner, what, text, rect, clip) => {
    const box = [Math.max(rect.left, clip[0]), Math.max(rect.top, clip[1]),
                 Math.min(rect.right, clip[2]), Math.min(rect.bottom, clip[3])];
    if (box[2] - box[0] < 1 || box[3] - box[1] < 1) return;
    boxes.push({owner, what, text: text.replace(/\s+/g, " ").trim().slice(0, 40), box});
  };
  for (const el of document.body.querySelectorAll(SELECTOR)) {
    if (getComputedStyle(el).visibility === "hidden") continue;
    add(el, describe(el), el.innerText || el.value || "", el.getBoundingClientRect(), clipOf(el));
  }
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    const el = node.parentElement;
    if (!node.textContent.trim() || !el || el.closest("script, style, title")) continue;
    if (getComputedStyle(el).visibility === "hidden") continue;
    const range = document.createRange();
    range.selectNodeContents(node);
    const clip = clipOf(node);
    for (const rect of range.getClientRects()) add(el, "text in " + describe(el), node.textContent, rect, clip);
  }
  const found = [];
  for (let i = 0; i < boxes.length; i++) {
    for (let j = i + 1; j < boxes.length; j++) {
      const a = boxes[i], b = boxes[j];
      // an element and what it holds (a cell and its text, two lines of one text) never count
      if (a.owner.contains(b.owner) || b.owner.contains(a.owner)) continue;
      const w = Math.min(a.box[2], b.box[2]) - Math.max(a.box[0], b.box[0]);
      const h = Math.min(a.box[3], b.box[3]) - Math.max(a.box[1], b.box[1]);
      if (w > TOLERANCE && h > TOLERANCE) {
        found.push(a.what + " '" + a.text + "' overlaps " + b.what + " '" + b.text + "' by " +
                   Math.round(w) + "x" + Math.round(h) + " px");
      }
    }
  }
  const page = document.documentElement.scrollWidth;
  if (page > window.innerWidth + 1) found.push("the page is " + page + " px wide in a " + window.innerWidth + " px window");
  return found;
})()
"""


@pytest.fixture(scope="module")
def server() -> Iterator[ApiServer]:
    # Fail (never skip) without the browser, before paying for the api-server start.
    assert Path(CHROMIUM).exists(), (
        f"{CHROMIUM} is missing: run scripts/ensure_browser.sh (make test does) to install it"
    )
    with run_api_server() as s:
        yield s


@pytest.fixture(scope="module")
def admin_token(server: ApiServer) -> str:
    return server.token("admin", "admin")


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_cookie_name_matches_airflow() -> None:
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN

    assert COOKIE == COOKIE_NAME_JWT_TOKEN


def test_plugin_is_listed_by_the_plugins_api(server: ApiServer, admin_token: str) -> None:
    resp = httpx.get(f"{server.base_url}/api/v2/plugins", headers=_auth(admin_token), timeout=30)
    assert resp.status_code == 200
    [plugin] = [p for p in resp.json()["plugins"] if p["name"] == "crm_sync_health"]
    assert [a["url_prefix"] for a in plugin["fastapi_apps"]] == ["/crm-sync"]
    assert {v["href"] for v in plugin["external_views"]} == {
        "/crm-sync/ui/overview",
        "/crm-sync/ui/quarantine",
        "/crm-sync/ui/lookup",
    }
    assert {v["category"] for v in plugin["external_views"]} == {"browse"}
    errors = httpx.get(
        f"{server.base_url}/api/v2/plugins/importErrors", headers=_auth(admin_token), timeout=30
    )
    assert errors.status_code == 200
    # plugins/.airflowignore keeps the library from being imported as loose plugin modules.
    assert errors.json()["import_errors"] == []


def test_api_needs_a_login_and_reads_the_store_from_the_connection(
    server: ApiServer, admin_token: str
) -> None:
    url = f"{server.base_url}/crm-sync/api/runs"
    assert httpx.get(url, timeout=30).status_code == 401
    assert httpx.get(url, headers=_auth("not-a-jwt"), timeout=30).status_code in (401, 403)
    runs = httpx.get(url, headers=_auth(admin_token), timeout=30).json()["runs"]
    assert len(runs) == 5  # the seeded store behind AIRFLOW_CONN_SYNC_STATE, not the default one
    budget = httpx.get(
        f"{server.base_url}/crm-sync/api/budget", headers=_auth(admin_token), timeout=30
    ).json()
    assert budget["used"] == server.data.sf_calls_24h and budget["budget"] == 1000


def test_retry_needs_edit_rights_in_the_auth_manager(server: ApiServer, admin_token: str) -> None:
    url = f"{server.base_url}/crm-sync/api/quarantine/retry"
    rid = server.data.quarantine["validation_rule"]
    viewer = server.token("vic", "vic")
    denied = httpx.post(url, json={"ids": [rid]}, headers=_auth(viewer), timeout=30)
    assert denied.status_code == 403 and denied.json()["detail"]["dag_ids"] == [PEOPLE_DAG]
    form = httpx.post(url, data={"ids": str(rid)}, headers=_auth(admin_token), timeout=30)
    assert form.status_code == 415
    ok = httpx.post(url, json={"ids": [rid]}, headers=_auth(admin_token), timeout=30)
    assert ok.status_code == 200 and ok.json()["marked"] == 1


async def _pages(server: ApiServer, token: str, ws_url: str) -> dict[str, object]:
    """Drive the browser through every page; return what the test asserts on."""
    base = server.base_url
    seen: dict[str, object] = {}
    async with Browser(ws_url) as b:
        # Not signed in: refused, nothing from the store shown.
        seen["anon_status"] = await b.goto(f"{base}/crm-sync/ui/overview")
        seen["anon_text"] = await b.text()

        # Signed in the way the UI is: the httpOnly _token cookie.
        await b.send(
            "Network.setCookie",
            name=COOKIE,
            value=token,
            url=base,
            path="/",
            httpOnly=True,
            sameSite="Lax",
        )
        seen["overview_status"] = await b.goto(f"{base}/crm-sync/ui/overview")
        seen["overview"] = await b.text()
        await b.screenshot(IMG_DIR / "sync-health-overview.png")

        seen["quarantine_status"] = await b.goto(f"{base}/crm-sync/ui/quarantine")
        seen["quarantine"] = await b.text()
        # Show one payload (with its redacted URL) in the docs' screenshot.
        required = server.data.quarantine["required"]
        await b.eval(f"document.querySelector('tr[data-id=\"{required}\"] details').open = true")
        await b.screenshot(IMG_DIR / "sync-health-quarantine.png")

        # "Retry selected" in the page itself: the cookie, the JSON body and the page's script.
        picklist = server.data.quarantine["picklist"]
        await b.eval(
            f"document.querySelector('input.pick[value=\"{picklist}\"]').click();"
            "document.getElementById('retry').click();"
        )
        message = ""
        for _ in range(50):
            message = str(await b.eval("document.getElementById('retry-msg').textContent"))
            if "marked for retry" in message or "Not marked" in message:
                break
            await asyncio.sleep(0.1)
        seen["retry_message"] = message

        seen["lookup_status"] = await b.goto(
            f"{base}/crm-sync/ui/lookup?q=ann.archer%40example.com"
        )
        seen["lookup"] = await b.text()
        await b.screenshot(IMG_DIR / "sync-health-lookup.png")

        # The Browse menu entry: the Airflow UI shows the page in an iframe at /plugin/<route>.
        await b.goto(f"{base}/plugin/crm-sync-quarantine")
        framed = ""
        for _ in range(100):
            framed = str(
                await b.eval(
                    "(() => { const f = document.querySelector('iframe');"
                    " return f && f.contentDocument && f.contentDocument.body"
                    " ? f.contentDocument.body.innerText : ''; })()"
                )
            )
            if "Retry selected" in framed:
                break
            await asyncio.sleep(0.1)
        seen["framed"] = framed
    return seen


def test_pages_render_in_chromium(server: ApiServer, admin_token: str) -> None:
    with run_chromium() as ws_url:
        seen = asyncio.run(_pages(server, admin_token, ws_url))

    assert seen["anon_status"] == 401
    anon = str(seen["anon_text"])
    assert "Sign in to Airflow" in anon and PEOPLE_DAG not in anon

    assert seen["overview_status"] == 200
    overview = str(seen["overview"])
    assert f"{server.data.sf_calls_24h} of 1,000 calls used" in overview
    assert "Automatic retries stop at 750 calls" in overview
    assert PEOPLE_DAG in overview and "sync_opportunities" in overview
    assert "threshold_exceeded" in overview and "3 of 7 rows rejected" in overview
    assert "links: created 2, converted 1, merged 1, deactivated 1, relinked 1" in overview
    assert "contact_roles: created 3, held 2" in overview

    assert seen["quarantine_status"] == 200
    quarantine = str(seen["quarantine"])
    assert f"{server.data.active_quarantine_rows} rows" in quarantine
    assert "Required fields are missing: [LastName]" in quarantine
    assert "REQUIRED_FIELD_MISSING" in quarantine and "validation rule" in quarantine
    assert seen["retry_message"] == "1 row(s) marked for retry by the next run."

    assert seen["lookup_status"] == 200
    lookup = str(seen["lookup"])
    assert "Lead Gen & CRM 1001 ⇄ Salesforce Contact 003000000000001AAA" in lookup
    assert "converted" in lookup and "00Q000000000001AAA converted to 003000000000001AAA" in lookup
    assert "Use one of these records?" in lookup

    assert "Required fields are missing" in str(seen["framed"])
    for key in ("overview", "quarantine", "lookup", "framed"):
        assert SECRET_MARK not in str(seen[key]), f"{key} shows a secret"
    for name in ("overview", "quarantine", "lookup"):
        png = IMG_DIR / f"sync-health-{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000

    # The click in the page reached the store.
    item = httpx.get(
        f"{server.base_url}/crm-sync/api/quarantine/{server.data.quarantine['picklist']}",
        headers=_auth(admin_token),
        timeout=30,
    ).json()
    assert (item["status"], item["attempts"]) == ("retry", 0)


# A record with what real runs write: Airflow's long run ids, a long detail, a custom field's
# systemName and a long URL (the seeded store's run ids are short).
LONG_RUN_IDS = ("scheduled__2026-11-27T10:00:00+00:00", "manual__2026-11-27T10:17:43.123456+00:00")


def _add_realistic_record(server: ApiServer) -> None:
    store = SyncStore(f"sqlite:///{server.state_db}")
    try:
        store.upsert_link(
            "person",
            "1099",
            "Lead",
            "00Q000000000099AAA",
            synced_values={
                "emailAddress": "quinn.quartermaine-longname@subsidiary.example.co.uk",
                "product_interest_5f1a2b3c4d5e6": "Email Marketing",
                "website": "https://www.example.co.uk/a/very/long/path/without/any/spaces?utm_source=newsletter",
            },
            run_id=LONG_RUN_IDS[0],
        )
        store.upsert_link(
            "person",
            "1099",
            "Contact",
            "003000000000099AAA",
            run_id=LONG_RUN_IDS[1],
            event="converted",
            detail="00Q000000000099AAA converted to 003000000000099AAA (account 001000000000099AAA)",
        )
    finally:
        store.dispose()


# Every page the plugin renders, in the states that lay out differently.
LAYOUT_PAGES = {
    "lookup (long run ids and values)": "/crm-sync/ui/lookup?q=1099",
    "overview": "/crm-sync/ui/overview",
    "quarantine": "/crm-sync/ui/quarantine?status=all",
    "lookup (converted, quarantined)": "/crm-sync/ui/lookup?q=ann.archer%40example.com",
    "lookup (merged)": "/crm-sync/ui/lookup?q=1002",
    "lookup (not linked yet)": "/crm-sync/ui/lookup?q=lg%3A1006",
    "lookup (empty)": "/crm-sync/ui/lookup",
    "lookup (bad term)": "/crm-sync/ui/lookup?q=not+an%40",
}


async def _overlaps(server: ApiServer, token: str, ws_url: str) -> dict[str, object]:
    """Lay out every page at each width (payloads expanded) and collect ``OVERLAPS_JS``; then
    draw a label over the page title to show that the check sees an overlap."""
    base = server.base_url
    seen: dict[str, object] = {}
    async with Browser(ws_url) as b:
        await b.send("Network.setCookie", name=COOKIE, value=token, url=base, path="/")
        for width in WIDTHS:
            await b.send(
                "Emulation.setDeviceMetricsOverride",
                width=width,
                height=900,
                deviceScaleFactor=1,
                mobile=False,
            )
            for name, path in LAYOUT_PAGES.items():
                status = await b.goto(base + path)
                assert status in (200, 404, 422), f"{name}: HTTP {status}"
                await b.eval(
                    "document.querySelectorAll('details').forEach(d => { d.open = true; })"
                )
                seen[f"{name} at {width} px"] = await b.eval(OVERLAPS_JS)
        await b.eval(
            "document.body.insertAdjacentHTML('beforeend',"
            " '<label style=\"position:absolute;left:24px;top:20px\">drawn over the title</label>')"
        )
        seen["planted"] = await b.eval(OVERLAPS_JS)
    return seen


def test_no_page_has_overlapping_elements_at_1280_or_600_px(
    server: ApiServer, admin_token: str
) -> None:
    _add_realistic_record(server)  # a link only: no other test counts links
    with run_chromium() as ws_url:
        seen = asyncio.run(_overlaps(server, admin_token, ws_url))
    planted = seen.pop("planted")
    assert any("drawn over the title" in str(o) for o in planted), planted  # type: ignore[attr-defined]
    assert len(seen) == len(LAYOUT_PAGES) * len(WIDTHS)
    problems = [
        f"{layout}: {finding}"
        for layout, found in seen.items()
        for finding in list(found)[:SHOWN_PER_LAYOUT]  # type: ignore[call-overload]
    ]
    assert not problems, "elements drawn over each other:\n" + "\n".join(problems)
