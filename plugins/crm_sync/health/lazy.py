"""An ASGI app that builds the real one on its first request.

Airflow imports every plugin module in every component (scheduler, dag-processor, triggerer,
each task process), not only in the api-server. Building the FastAPI app needs Airflow's API
security module, which drags in the API server's app and the ORM models (about half a second);
deferring it to the first request keeps the plugin import nearly free everywhere else.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class LazyASGIApp:
    """Calls ``factory`` once, on the first HTTP request, and hands every request to its app."""

    def __init__(self, factory: Callable[[], ASGIApp]) -> None:
        self._factory = factory
        self._app: ASGIApp | None = None

    @property
    def app(self) -> ASGIApp:
        """The real app (built now if no request has built it yet)."""
        if self._app is None:
            # The event loop runs one coroutine at a time and the factory does not await, so two
            # requests cannot both build it.
            self._app = self._factory()
            log.info("sync health: app built")
        return self._app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            # Mounted sub-apps get no lifespan events from Starlette; when run on its own (tests),
            # acknowledge start-up and shutdown without building anything.
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await self.app(scope, receive, send)
