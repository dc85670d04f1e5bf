"""Airflow 3 plugin: the CRM sync health pages inside the Airflow UI (Browse → Sync health …).

Mounts the FastAPI app of :mod:`crm_sync.health.app` in the api-server under ``/crm-sync`` and
adds three entries to the Browse menu; each opens one server-rendered page in the UI's iframe,
which carries the UI's login cookie.

Every Airflow component imports plugin modules (the scheduler and each task process too), so this
module imports nothing heavy: the app is built on its first request (:class:`LazyASGIApp`) and
the state store is opened on first use, so an empty or missing store never breaks start-up.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

from crm_sync.health.lazy import LazyASGIApp

URL_PREFIX = "/crm-sync"


def _build_app() -> Any:
    from crm_sync.health.app import create_app

    return create_app()


app = LazyASGIApp(_build_app)


def _view(name: str, page: str) -> dict[str, str]:
    return {
        "name": name,
        "href": f"{URL_PREFIX}/ui/{page}",
        "destination": "nav",
        "category": "browse",
        # The UI shows the page in an iframe at /plugin/<url_route>.
        "url_route": f"crm-sync-{page}",
    }


class SyncHealthPlugin(AirflowPlugin):
    """Sync health: runs and API budget, quarantine (grouped, retry, CSV), record lookup."""

    name = "crm_sync_health"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "Sync health"}]
    external_views = [
        _view("Sync health: overview", "overview"),
        _view("Sync health: quarantine", "quarantine"),
        _view("Sync health: record lookup", "lookup"),
    ]
