"""The HTTP application: the JSON-RPC endpoint, the envelope, auth, limits and faults.

``POST /pubapi/v1.2/?accountID=...&secretKey=...`` behaves like the real endpoint:

* bad or missing credentials -> HTTP 401, bare text body, ``WWW-Authenticate`` (reference 1);
* every other outcome is HTTP 200 with ``{result, error, id, callCount, queryLimit}``;
* reads answer ``error: null``; batch writes answer ``error: []`` on full success, or the list of
  the failed objects' error copies on partial failure (reference 3.2).

Nothing here logs the query string: the secret key travels in it.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from . import API_PATH, methods  # noqa: F401 - importing methods registers them
from .clock import AccountClock
from .config import ConfigHolder
from .errors import ApiError, error_object
from .hooks import HookQueue
from .limits import CallStats, FaultInjector, SlidingWindowLimiter
from .rpc import METHODS, Context, Method
from .storage import Database
from .writelog import WriteLog

log = logging.getLogger(__name__)

AUTH_FAILURE_BODY = "Unable to determine clusterID from provided accountID/secretKey"
RAW_SEND_KEY = "leadgen.raw_send"


@dataclass
class SandboxState:
    """Everything the app shares between requests."""

    db: Database
    clock: AccountClock
    config: ConfigHolder
    account_id: str
    secret_key: str
    limiter: SlidingWindowLimiter = field(default_factory=SlidingWindowLimiter)
    stats: CallStats = field(default_factory=CallStats)
    faults: FaultInjector = field(default_factory=FaultInjector)
    hooks: HookQueue = field(default_factory=HookQueue)
    writes: WriteLog = field(default_factory=WriteLog)
    allow_remote_admin: bool = False

    @property
    def ctx(self) -> Context:
        return Context(self.db, self.clock, self.config.current)

    def reset_counters(self) -> None:
        self.stats = CallStats()
        self.limiter.clear()


def _json(payload: Any, status: int = 200) -> Response:
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return Response(body, status_code=status, media_type="application/json")


def _credentials_ok(state: SandboxState, request: Request) -> bool:
    account = request.query_params.get("accountID", "")
    secret = request.query_params.get("secretKey", "")
    return hmac.compare_digest(account.encode(), state.account_id.encode()) and hmac.compare_digest(
        secret.encode(), state.secret_key.encode()
    )


def _auth_failure() -> Response:
    return PlainTextResponse(
        AUTH_FAILURE_BODY,
        status_code=401,
        headers={"WWW-Authenticate": 'Basic realm="SharpSpring"'},
    )


class _NoResponse(Response):
    """Sends nothing: the connection is already gone."""

    def __init__(self) -> None:
        super().__init__(b"")

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        return None


async def _drop_connection(request: Request) -> Response:
    """Close the TCP connection without answering (a "dropped connection" fault).

    Uvicorn does not expose the transport to the app, but its ASGI ``send`` is a bound method of
    the request cycle that owns it; the outermost wrapper stashes that ``send`` in the scope.
    If the transport cannot be found the fault degrades to a response cut off mid-body.
    """
    raw_send = request.scope.get(RAW_SEND_KEY)
    transport = getattr(getattr(raw_send, "__self__", None), "transport", None)
    if transport is not None:
        transport.abort()
        # Let the server notice the disconnect before the app returns, so it does not try to
        # write a 500 on the dead connection.
        for _ in range(3):
            await asyncio.sleep(0)
        return _NoResponse()
    return Response(b'{"result":', status_code=200, headers={"content-length": "4096"})


def _method_spec(envelope: Any, method_name: str | None) -> tuple[Method, dict[str, Any]]:
    """Check the envelope and find the method (101, 102, 201, 202, 205, 204 otherwise)."""
    if not isinstance(envelope, dict):
        raise ApiError(101, data={"hint": "the body must be a JSON object"})
    if "id" not in envelope:
        raise ApiError(102)
    if "method" not in envelope:
        raise ApiError(201)
    if "params" not in envelope:
        raise ApiError(202)
    params = envelope["params"]
    if isinstance(params, list) and not params:
        params = {}  # PHP encodes an empty array as []
    if not isinstance(params, dict):
        raise ApiError(205, "Invalid parameters: params must be an object", {"param": "params"})
    spec = METHODS.get(method_name or "")
    if spec is None:
        raise ApiError(204, f"Invalid method: {method_name}", {"method": method_name})
    return spec, params


class RpcEndpoint:
    def __init__(self, state: SandboxState):
        self.state = state

    async def handle(self, request: Request) -> Response:
        state = self.state
        started = time.perf_counter()
        if not _credentials_ok(state, request):
            log.info("POST %s -> 401 (bad credentials)", request.url.path)
            return _auth_failure()

        raw = await request.body()
        try:
            envelope = json.loads(raw) if raw else None
        except (ValueError, UnicodeDecodeError):
            envelope = None
        method_name = envelope.get("method") if isinstance(envelope, dict) else None
        if not isinstance(method_name, str):
            method_name = None
        req_id = envelope.get("id") if isinstance(envelope, dict) else None
        refused = self._limit(method_name)
        if refused is not None:
            return self._respond(
                None, ApiError(refused).to_json(), req_id, method_name, started, refused
            )

        config = state.config.current
        fault = state.faults.draw(method_name or "<invalid>", config.fault_rate, config.fault_kinds)
        if config.latency_ms or config.latency_jitter_ms:
            await asyncio.sleep(
                (config.latency_ms + state.faults.jitter(config.latency_jitter_ms)) / 1000
            )
        if fault is not None:
            state.stats.rejected[f"fault:{fault}"] += 1
            log.info("%s: injected fault %s", method_name, fault)
        if fault == "drop":
            return await _drop_connection(request)
        if fault == "500":
            return PlainTextResponse("Internal Server Error", status_code=500)
        if fault in ("999", "107"):
            code = int(fault)
            return self._respond(None, ApiError(code).to_json(), req_id, method_name, started, code)
        response = await self._execute(envelope, method_name, req_id, started)
        if fault == "drop_after":
            # The call was processed (a write is committed); only the answer is lost.
            return await _drop_connection(request)
        return response

    def _limit(self, method_name: str | None) -> int | None:
        """Count the call; the code refusing it (107 per second, 106 per day), or None."""
        state, config, stats = self.state, self.state.config.current, self.state.stats
        stats.total += 1
        stats.by_method[method_name or "<invalid>"] += 1
        if not state.limiter.try_acquire(config.per_second_limit):
            stats.rejected["107"] += 1
            return 107
        day = state.clock.now().strftime("%Y-%m-%d")
        if stats.daily_day != day:
            stats.daily_day, stats.daily_count = day, 0
        if config.daily_limit and stats.daily_count >= config.daily_limit:
            stats.rejected["106"] += 1
            return 106
        stats.daily_count += 1
        return None

    async def _execute(
        self, envelope: Any, method_name: str | None, req_id: Any, started: float
    ) -> Response:
        """Validate the envelope, fire due test hooks, run the method, build the answer."""
        state = self.state
        try:
            spec, params = _method_spec(envelope, method_name)
            for hook in state.hooks.due(spec.name):
                await run_in_threadpool(self._touch, hook)
            result = await run_in_threadpool(spec.fn, state.ctx, params)
        except ApiError as exc:
            return self._respond(None, exc.to_json(), req_id, method_name, started, exc.code)
        except Exception:
            log.exception("%s failed inside the sandbox", method_name)
            return self._respond(
                None, error_object(999, "Unknown error"), req_id, method_name, started, 999
            )
        if spec.write:
            state.writes.on_write(spec.name, params.get("objects"), result)
            errors = [
                entry["error"]
                for entries in result.values()
                if isinstance(entries, list)
                for entry in entries
                if isinstance(entry, dict) and not entry.get("success")
            ]
            return self._respond(result, errors, req_id, method_name, started, None)
        return self._respond(result, None, req_id, method_name, started, None)

    def _touch(self, hook: Any) -> None:
        from .marketer import AdminError, touch_lead

        try:
            touch_lead(self.state.db, hook.lead_id, hook.fields, self.state.clock.now_str())
        except AdminError as exc:  # a hook on a missing lead must not fail the API call
            log.warning("hook on %s: %s", hook.method, exc.message)
            return
        log.info("hook: touched lead %s before %s call %d", hook.lead_id, hook.method, hook.call)

    def _respond(
        self,
        result: Any,
        error: Any,
        req_id: Any,
        method_name: str | None,
        started: float,
        code: int | None,
    ) -> Response:
        stats = self.state.stats
        body: dict[str, Any] = {"result": result, "error": error, "id": req_id}
        if isinstance(result, dict) and "hasMore" in result:
            body["hasMore"] = result["hasMore"]  # returned twice by the real API
        body["callCount"] = str(stats.daily_count)
        body["queryLimit"] = str(self.state.config.current.daily_limit)
        log.info(
            "%s -> %s in %.1f ms",
            method_name or "<invalid>",
            "ok" if code is None else f"error {code}",
            (time.perf_counter() - started) * 1000,
        )
        return _json(body)


class RawSendCapture:
    """Outermost ASGI layer: remembers the server's own ``send`` for the drop-connection fault."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope[RAW_SEND_KEY] = send
        await self.app(scope, receive, send)


def create_app(state: SandboxState) -> Any:
    """Build the ASGI app (API endpoint + admin surface)."""
    from .admin import admin_routes
    from .app_page import app_routes

    rpc = RpcEndpoint(state)
    legacy = API_PATH.rstrip("/")
    routes = [
        # A bound method, so Starlette treats it as a request -> response endpoint.
        Route(API_PATH, rpc.handle, methods=["POST"]),
        Route(legacy, rpc.handle, methods=["POST"]),
        *admin_routes(state),
        *app_routes(),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": "not found", "path": request.url.path}, status_code=404)

    app = Starlette(routes=routes, exception_handlers={404: not_found})
    app.state.sandbox = state
    return RawSendCapture(app)
