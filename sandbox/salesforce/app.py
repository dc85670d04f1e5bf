"""The ASGI application: login, the REST/Bulk API with limits and faults, and the admin surface.

Request pipeline for ``/services/data/vNN.N/...``:

1. injected latency (``asyncio.sleep``, so it does not hold a worker thread);
2. request-URI length (414 above 16,384 bytes, like a real org's front end);
3. session check -> 401 ``INVALID_SESSION_ID`` (the body is the JSON list simple-salesforce
   needs to log in again);
4. injected call faults -> dropped connection, 401, 403, 503 or 400 ``UNABLE_TO_LOCK_ROW``;
5. the daily API allocation -> 403 ``REQUEST_LIMIT_EXCEEDED`` when spent, else the call counts;
6. the handler (:mod:`.rest`), in the thread pool.

Every response under ``/services/data`` carries ``Sforce-Limit-Info: api-usage=n/N``.

Login: any POST whose body is a SOAP ``login`` envelope (simple-salesforce posts it to ``/``
when ``domain='127.0.0.1:PORT#'``), and OAuth password grants on ``/services/oauth2/token``
(or ``/`` with a ``grant_type`` form, the same ``domain`` trick).
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import logging
import re
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from .admin import AdminApi
from .errors import ApiError
from .org import ORG_ID, Org
from .rest import API_VERSIONS, Call, Reply, RestApi, classify

log = logging.getLogger(__name__)

MAX_URI_BYTES = 16_384
_REST_RE = re.compile(r"^/services/data/v(\d{2,3}\.\d)(?:/(.*))?$")
_LOGIN_FAULT = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
    'xmlns:sf="urn:fault.partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
    "<soapenv:Body><soapenv:Fault><faultcode>sf:{code}</faultcode>"
    "<faultstring>{code}: {message}</faultstring><detail>"
    '<sf:{fault} xsi:type="sf:{fault}"><sf:exceptionCode>{code}</sf:exceptionCode>'
    "<sf:exceptionMessage>{message}</sf:exceptionMessage></sf:{fault}>"
    "</detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>"
)
INVALID_LOGIN_MESSAGE = "Invalid username, password, security token; or user locked out."


def _json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    content = b"" if body is None else json.dumps(body, separators=(",", ":")).encode("utf-8")
    if status in (201, 204) and body is None:
        return Response(status_code=status, headers=headers)
    return Response(
        content, status_code=status, headers=headers, media_type="application/json;charset=UTF-8"
    )


def _reply_response(reply: Reply) -> Response:
    if reply.content_type.startswith("application/json"):
        return _json_response(reply.status, reply.body, reply.headers)
    body = reply.body if isinstance(reply.body, (bytes, str)) else ""
    return Response(
        body, status_code=reply.status, headers=reply.headers, media_type=reply.content_type
    )


def _local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_soap_login(body: bytes) -> tuple[str, str] | None:
    """(username, password+token) from a SOAP ``login`` envelope, or None if it is not one."""
    if b"login" not in body[:4096] and b"login" not in body:
        return None
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return None
    for el in root.iter():
        if _local_name(el.tag) == "login":
            values = {_local_name(child.tag): (child.text or "") for child in el}
            return html.unescape(values.get("username", "")), html.unescape(
                values.get("password", "")
            )
    return None


class SandboxApp:
    """ASGI entry point. ``org`` holds all state; this class only routes and enforces."""

    def __init__(self, org: Org):
        self.org = org
        self.rest = RestApi(org)
        self.admin = AdminApi(org)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        try:
            response = await self._dispatch(request, send)
        except ApiError as exc:
            response = _json_response(exc.status, exc.body(), exc.headers)
        except Exception:
            log.exception("unhandled error for %s %s", request.method, request.url.path)
            response = _json_response(
                500,
                [
                    {
                        "message": "An unexpected error occurred in the sandbox.",
                        "errorCode": "UNKNOWN_EXCEPTION",
                    }
                ],
            )
        if response is None:
            return  # connection dropped on purpose
        await response(scope, receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                with contextlib.suppress(Exception):
                    self.org.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # ------------------------------------------------------------------------- routing
    async def _dispatch(self, request: Request, send: Any) -> Response | None:
        path = request.url.path
        method = request.method.upper()
        if path.startswith("/__sandbox__"):
            body = await request.body()
            reply = await run_in_threadpool(
                self.admin.handle, method, path, dict(request.query_params), body
            )
            return _reply_response(reply)
        body = await request.body()
        if method == "POST":
            login = parse_soap_login(body) if self._maybe_soap(request) else None
            if login is not None:
                return await self._soap_login(request, login, send)
            if path in ("/services/oauth2/token", "/") and b"grant_type" in body:
                return await self._oauth(request, body, send)
        if path.rstrip("/") == "/services/data":
            return _json_response(
                200,
                [
                    {"label": f"v{v}", "url": f"/services/data/v{v}", "version": v}
                    for v in API_VERSIONS
                ],
            )
        m = _REST_RE.match(path)
        if m:
            return await self._api(request, method, m.group(1), m.group(2) or "", body, send)
        raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")

    @staticmethod
    def _maybe_soap(request: Request) -> bool:
        ctype = request.headers.get("content-type", "")
        action = request.headers.get("soapaction", "").strip('"')
        return "xml" in ctype or action == "login"

    def _host(self, request: Request) -> str:
        """host:port for serverUrl/instance_url: the one the client used, if it is ours."""
        host = request.headers.get("host", "")
        if re.fullmatch(r"(127\.0\.0\.1|localhost):\d+", host):
            return host
        return f"127.0.0.1:{self.org.settings.port}"

    async def _pre_login(self, request: Request, send: Any) -> tuple[bool, Response | None]:
        """Latency and login faults: (go on?, the response to send instead -- None if dropped)."""
        delay = self.org.faults.latency_seconds()
        if delay:
            await asyncio.sleep(delay)
        fault = self.org.faults.call_fault(
            request.method,
            request.url.path,
            "login",
            random_allowed=False,
            applicable=("SERVER_UNAVAILABLE", "DROP"),
        )
        if fault == "DROP":
            self._drop(send)
            return False, None
        if fault == "SERVER_UNAVAILABLE":
            body = [{"message": "Server unavailable", "errorCode": "SERVER_UNAVAILABLE"}]
            return False, _json_response(503, body)
        return True, None

    async def _soap_login(
        self, request: Request, login: tuple[str, str], send: Any
    ) -> Response | None:
        go_on, instead = await self._pre_login(request, send)
        if not go_on:
            return instead
        self.org.usage.not_counted("login")
        user_id = self.org.check_login(*login)
        if user_id is None:
            log.info("SOAP login refused for user %r", login[0])
            return Response(
                _LOGIN_FAULT.format(
                    code="INVALID_LOGIN", message=INVALID_LOGIN_MESSAGE, fault="LoginFault"
                ),
                status_code=500,
                media_type="text/xml;charset=UTF-8",
            )
        sid = self.org.sessions.create(user_id)
        version = self._soap_version(request.url.path, self.org.settings.api_version)
        host = self._host(request)
        user = self.org.user(user_id) or {}
        xml = (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
            'xmlns="urn:partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
            "<soapenv:Body><loginResponse><result>"
            f"<metadataServerUrl>https://{host}/services/Soap/m/{version}/{ORG_ID[:15]}</metadataServerUrl>"
            "<passwordExpired>false</passwordExpired>"
            f"<sandbox>{'true' if self.org.settings.is_sandbox else 'false'}</sandbox>"
            f"<serverUrl>https://{host}/services/Soap/u/{version}/{ORG_ID[:15]}</serverUrl>"
            f"<sessionId>{sid}</sessionId>"
            f"<userId>{user_id}</userId>"
            "<userInfo>"
            f"<organizationId>{ORG_ID}</organizationId>"
            f"<userEmail>{html.escape(user.get('Email', ''))}</userEmail>"
            f"<userFullName>{html.escape(user.get('Name', ''))}</userFullName>"
            f"<userId>{user_id}</userId>"
            f"<userName>{html.escape(user.get('Username', ''))}</userName>"
            "</userInfo></result></loginResponse></soapenv:Body></soapenv:Envelope>"
        )
        return Response(xml, status_code=200, media_type="text/xml;charset=UTF-8")

    @staticmethod
    def _soap_version(path: str, default: str) -> str:
        """The API version of the login URL; the ``domain`` trick posts to ``/``, which has none."""
        m = re.search(r"/Soap/u/(\d+\.\d)", path)
        return m.group(1) if m else default

    async def _oauth(self, request: Request, body: bytes, send: Any) -> Response | None:
        go_on, instead = await self._pre_login(request, send)
        if not go_on:
            return instead
        self.org.usage.not_counted("oauth")
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        if form.get("grant_type") != "password":
            return _json_response(
                400,
                {
                    "error": "unsupported_grant_type",
                    "error_description": "grant type not supported",
                },
            )
        if not form.get("client_id"):
            return _json_response(
                400,
                {"error": "invalid_client_id", "error_description": "client identifier invalid"},
            )
        user_id = self.org.check_login(form.get("username", ""), form.get("password", ""))
        if user_id is None:
            log.info("OAuth login refused for user %r", form.get("username"))
            return _json_response(
                400, {"error": "invalid_grant", "error_description": "authentication failure"}
            )
        sid = self.org.sessions.create(user_id)
        host = self._host(request)
        return _json_response(
            200,
            {
                "access_token": sid,
                "instance_url": f"https://{host}",
                "id": f"https://{host}/id/{ORG_ID}/{user_id}",
                "token_type": "Bearer",
                "issued_at": str(self.org.clock.now_ms()),
                "signature": "sandbox",
            },
        )

    # ---------------------------------------------------------------------------- API
    def _limit_headers(self) -> dict[str, str]:
        return {"Sforce-Limit-Info": self.org.usage.header()}

    def _drop(self, send: Any) -> None:
        """Close the TCP connection without answering (simulates a dropped connection).

        uvicorn hands the application its per-request cycle's bound ``send``; its ``transport``
        is the connection. Aborting it makes the client see ``RemoteDisconnected``.
        """
        cycle = getattr(send, "__self__", None)
        transport = getattr(cycle, "transport", None)
        if transport is None:
            raise ApiError(503, "SERVER_UNAVAILABLE", "connection dropped (simulated)")
        transport.abort()
        with contextlib.suppress(AttributeError):
            cycle.disconnected = True  # stop uvicorn from writing a 500 into the dead socket

    async def _api(
        self, request: Request, method: str, version: str, rest_path: str, body: bytes, send: Any
    ) -> Response | None:
        org = self.org
        segments = [s for s in rest_path.split("/") if s]
        kind = classify(method, segments)
        delay = org.faults.latency_seconds()
        if delay:
            await asyncio.sleep(delay)
        raw_len = len(request.scope.get("raw_path", b"")) + len(
            request.scope.get("query_string", b"")
        )
        if raw_len > MAX_URI_BYTES:
            org.usage.not_counted("URI_TOO_LONG")
            raise ApiError(
                414,
                "URI_TOO_LONG",
                f"The request URI is longer than {MAX_URI_BYTES} bytes",
                headers=self._limit_headers(),
            )
        auth = request.headers.get("authorization", "")
        token = auth.split(None, 1)[1].strip() if " " in auth else ""
        user = org.sessions.check(token) if token else None
        if user is None:
            org.usage.not_counted("INVALID_SESSION_ID")
            raise self._invalid_session()
        fault = org.faults.call_fault(method, request.url.path, kind, random_allowed=True)
        if fault == "DROP":
            org.usage.not_counted("DROP")
            self._drop(send)
            return None
        if fault == "INVALID_SESSION_ID":
            org.usage.not_counted("INVALID_SESSION_ID")
            raise self._invalid_session()
        if fault == "REQUEST_LIMIT_EXCEEDED":
            org.usage.not_counted("REQUEST_LIMIT_EXCEEDED")
            raise ApiError(
                403,
                "REQUEST_LIMIT_EXCEEDED",
                "TotalRequests Limit exceeded.",
                headers=self._limit_headers(),
            )
        allowed, _, _ = org.usage.count(kind)
        if not allowed:
            raise ApiError(
                403,
                "REQUEST_LIMIT_EXCEEDED",
                "TotalRequests Limit exceeded.",
                headers=self._limit_headers(),
            )
        if fault == "SERVER_UNAVAILABLE":
            raise ApiError(
                503,
                "SERVER_UNAVAILABLE",
                "Server temporarily unavailable, please retry.",
                headers=self._limit_headers(),
            )
        if fault == "UNABLE_TO_LOCK_ROW":
            raise ApiError(
                400,
                "UNABLE_TO_LOCK_ROW",
                "unable to obtain exclusive access to this record",
                headers=self._limit_headers(),
            )
        call = Call(
            method=method,
            version=version,
            segments=segments,
            params=dict(request.query_params),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            user=user,
        )
        try:
            reply = await run_in_threadpool(self.rest.handle, call)
        except ApiError as exc:
            exc.headers = {**exc.headers, **self._limit_headers()}
            raise
        reply.headers = {**reply.headers, **self._limit_headers()}
        return _reply_response(reply)

    def _invalid_session(self) -> ApiError:
        return ApiError(401, "INVALID_SESSION_ID", "Session expired or invalid")


def build_app(org: Org) -> SandboxApp:
    return SandboxApp(org)
