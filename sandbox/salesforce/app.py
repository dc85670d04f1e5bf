"""The ASGI application: login, the REST/Bulk API with limits and faults, and the admin surface.

Request pipeline for ``/services/data/vNN.N/...``:

1. injected latency (``asyncio.sleep``, so it does not hold a worker thread);
2. request-URI length (414 above 16,384 bytes, like a real org's front end);
3. session check -> 401 ``INVALID_SESSION_ID`` (the body is the JSON list simple-salesforce
   needs to log in again);
4. injected call faults that refuse the call: dropped connection, 401 (the session ends), 403
   ``REQUEST_LIMIT_EXCEEDED`` (daily or concurrent);
5. API access (:mod:`.access`): 403 ``API_DISABLED_FOR_ORG`` when the org's edition or the
   user's permissions exclude the API;
6. the daily API allocation -> 403 ``REQUEST_LIMIT_EXCEEDED`` when spent, else the call counts;
7. injected faults after counting: 503, 400 ``UNABLE_TO_LOCK_ROW``;
8. the handler (:mod:`.rest`), in the thread pool; with the ``DROP_AFTER`` fault the
   connection is then closed instead of answering (the write stays committed).

Every response under ``/services/data`` carries ``Sforce-Limit-Info: api-usage=n/N``.

Login: any POST whose body is a SOAP ``login`` envelope (simple-salesforce posts it to ``/``
when ``domain='127.0.0.1:PORT#'``), and OAuth password grants on ``/services/oauth2/token``
(or ``/`` with a ``grant_type`` form, the same ``domain`` trick).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from typing import Any
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from .admin import AdminApi
from .errors import ApiError
from .identity import identity
from .mdapi import MetadataApi
from .org import Org
from .rest import API_VERSIONS, Call, Reply, RestApi, classify
from .soap import (
    INVALID_LOGIN_MESSAGE,
    SoapApi,
    fault,
    login_response,
    parse_envelope,
    parse_soap_login,
)

log = logging.getLogger(__name__)

MAX_URI_BYTES = 16_384
# Injected faults that answer after the call was counted (the request reached the org).
_COUNTED_FAULTS = {
    "SERVER_UNAVAILABLE": (503, "Server temporarily unavailable, please retry."),
    "UNABLE_TO_LOCK_ROW": (400, "unable to obtain exclusive access to this record"),
}
_REST_RE = re.compile(r"^/services/data/v(\d{2,3}\.\d)(?:/(.*))?$")


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


class SandboxApp:
    """ASGI entry point. ``org`` holds all state; this class only routes and enforces."""

    def __init__(self, org: Org):
        self.org = org
        self.rest = RestApi(org)
        self.admin = AdminApi(org)
        self.soap = SoapApi(org, metadata=MetadataApi(org))

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
        if path.startswith("/id/"):
            return self._identity(request, path)
        if method == "POST":
            login = parse_soap_login(body) if self._maybe_soap(request) else None
            if login is not None:
                return await self._soap_login(request, login, send)
            if path in ("/services/oauth2/token", "/") and b"grant_type" in body:
                return await self._oauth(request, body, send)
        if path.startswith("/services/Soap/") or (
            method == "POST" and self._maybe_soap(request) and parse_envelope(body) is not None
        ):
            status, xml = await run_in_threadpool(self.soap.handle, method, path, body)
            return Response(xml, status_code=status, media_type="text/xml;charset=UTF-8")
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
                fault("INVALID_LOGIN", INVALID_LOGIN_MESSAGE),
                status_code=500,
                media_type="text/xml;charset=UTF-8",
            )
        sid = self.org.sessions.create(user_id)
        version = self._soap_version(request.url.path, self.org.settings.api_version)
        xml = login_response(self.org, self._host(request), version, user_id, sid)
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
                "id": f"https://{host}/id/{self.org.org_id}/{user_id}",
                "token_type": "Bearer",
                "issued_at": str(self.org.clock.now_ms()),
                "signature": "sandbox",
            },
        )

    def _identity(self, request: Request, path: str) -> Response:
        parts = [p for p in path.split("/") if p]
        if request.method.upper() != "GET" or len(parts) != 3:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        auth = request.headers.get("authorization", "")
        token = auth.split(None, 1)[1].strip() if " " in auth else ""
        params = dict(request.query_params)
        token = token or params.get("oauth_token") or params.get("access_token") or ""
        reply = identity(
            self.org, self._host(request), parts[1], parts[2], token, params, API_VERSIONS
        )
        if reply.status == 200:
            self.org.usage.not_counted("identity")
            return _json_response(200, reply.body)
        return Response(reply.body, status_code=reply.status, media_type=reply.content_type)

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
        refusal = self._refusal(fault, token)
        if refusal is not None:
            if refusal == "DROP":
                self._drop(send)
                return None
            raise refusal
        refused = org.access.api_refusal(user)
        if refused is not None:
            org.usage.not_counted(refused[0])
            raise ApiError(403, *refused, headers=self._limit_headers())
        allowed, _, _ = org.usage.count(kind)
        if not allowed:
            raise ApiError(
                403,
                "REQUEST_LIMIT_EXCEEDED",
                "TotalRequests Limit exceeded.",
                headers=self._limit_headers(),
            )
        if fault in ("SERVER_UNAVAILABLE", "UNABLE_TO_LOCK_ROW"):
            status, message = _COUNTED_FAULTS[fault]
            raise ApiError(status, fault, message, headers=self._limit_headers())
        call = Call(
            method=method,
            version=version,
            segments=segments,
            params=dict(request.query_params),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            user=user,
            host=self._host(request),
        )
        try:
            reply = await run_in_threadpool(self.rest.handle, call)
        except ApiError as exc:
            if fault == "DROP_AFTER":
                self._drop(send)  # the request was processed; its answer is lost
                return None
            exc.headers = {**exc.headers, **self._limit_headers()}
            raise
        if fault == "DROP_AFTER":
            self._drop(send)  # committed, then the connection breaks before the answer
            return None
        reply.headers = {**reply.headers, **self._limit_headers()}
        return _reply_response(reply)

    def _refusal(self, fault: str | None, token: str) -> ApiError | str | None:
        """What an injected fault answers before the allocation is counted (not counted)."""
        org = self.org
        if fault == "DROP":
            org.usage.not_counted("DROP")
            return "DROP"
        if fault == "INVALID_SESSION_ID":
            org.usage.not_counted("INVALID_SESSION_ID")
            org.sessions.expire(token)  # the session really ends: a new login is needed
            return self._invalid_session()
        if fault in ("REQUEST_LIMIT_EXCEEDED", "CONCURRENT_LIMIT"):
            org.usage.not_counted(fault)
            message = (
                "TotalRequests Limit exceeded."
                if fault == "REQUEST_LIMIT_EXCEEDED"
                else "ConcurrentPerOrgLongTxn Limit exceeded."
            )
            return ApiError(403, "REQUEST_LIMIT_EXCEEDED", message, headers=self._limit_headers())
        return None

    def _invalid_session(self) -> ApiError:
        return ApiError(401, "INVALID_SESSION_ID", "Session expired or invalid")


def build_app(org: Org) -> SandboxApp:
    return SandboxApp(org)
