"""FastAPI app of the sync health pages (mounted by the Airflow api-server under ``/crm-sync``).

Three server-rendered pages (``/ui/overview``, ``/ui/quarantine``, ``/ui/lookup``) and the JSON
API behind them (``/api/...``). Every route requires an Airflow login through ``GetUserDep``
(the Bearer token of the REST API, or the ``_token`` cookie the Airflow UI sets), so the pages
work inside the UI's iframe and the API works with ``POST /auth/token``. Marking quarantined
rows for retry also needs edit rights on the DAG (``PUT`` on the DAG in the auth manager), a JSON
body, and a request that is not cross-site (see :func:`same_site_json`).

The state store is opened lazily on the first request (:class:`StoreProvider`), so importing
this module costs no database work and a missing or broken store answers 503 instead of breaking
the api-server.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from crm_sync.health import api, changes, pages, resync
from crm_sync.health.deps import dag_edit_check, error_page, is_page
from crm_sync.health.source import StoreProvider, StoreUnavailable

__all__ = ["create_app", "dag_edit_check"]


# -- the app -------------------------------------------------------------------------------
def create_app(state_url: str | None = None) -> FastAPI:
    """Build the app. ``state_url`` pins the store (tests); without it the store is resolved
    from the ``sync_state`` Airflow connection, else the default SQLite file."""
    app = FastAPI(
        title="CRM sync health",
        description="Sync health of the Lead Gen & CRM <-> Salesforce DAGs (runs, API budget, "
        "quarantine, record lookup). Every route needs an Airflow login.",
        version="1",
        # FastAPI's own /openapi.json and /docs would be public (and Swagger UI loads its assets
        # from a CDN); the schema is served behind the login at /api/openapi.json instead.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.store_provider = StoreProvider(state_url)

    @app.exception_handler(StoreUnavailable)
    async def _store_unavailable(request: Request, exc: StoreUnavailable) -> Response:
        if is_page(request):
            return error_page(request, 503, "State store unavailable", str(exc))
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if is_page(request):
            if exc.status_code in (401, 403):
                return error_page(
                    request,
                    exc.status_code,
                    "Sign in to Airflow",
                    "These pages need an Airflow login. Open them from the Airflow UI "
                    "(Browse → Sync health) after signing in.",
                )
            return error_page(request, exc.status_code, "Error", str(exc.detail))
        return JSONResponse(
            {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")}
            for e in exc.errors()
        ]
        if is_page(request):
            text = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
            return error_page(request, 422, "Invalid request", text)
        return JSONResponse({"detail": errors}, status_code=422)

    app.include_router(api.router)
    app.include_router(pages.router)
    app.include_router(changes.router)  # a run's changes and its undo
    app.include_router(resync.router)  # "Resync now" on the record lookup
    return app
