"""The one per-request metric: every HTTP request timed by method, route template and status
class (shopkit.metrics keeps the registry and serves /metrics)."""

import time
from typing import Protocol

from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED = "unmatched"
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


class Observes(Protocol):
    def observe(self, method: str, route: str, status: int, seconds: float) -> None: ...


class HttpMetrics:
    """Times every HTTP request by method, route template (never the raw path: the label's
    values stay as few as the routes) and status class."""

    def __init__(self, app: ASGIApp, metrics: Observes) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers when the app raises

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path_format", None) or UNMATCHED
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            self.metrics.observe(method, template, status, time.perf_counter() - started)
