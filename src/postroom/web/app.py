"""The HTTP app: admin API, intake, health checks, metrics and the delivery dashboard.

``create_app`` opens the store, migrates it, and runs a worker in the same event loop unless
told not to.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Annotated

from fastapi import Depends, FastAPI, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from postroom import __version__
from postroom.config import Settings
from postroom.config.tenants import TenantRegistry
from postroom.events.intake import EventIntake
from postroom.events.runner import after_handoff
from postroom.events.webhooks import WebhookSender
from postroom.intake.listener_sockets import BoundSocket
from postroom.intake.smtp_listener import Listener
from postroom.metrics import CONTENT_TYPE_LATEST, Metrics
from postroom.store import Store, open_store
from postroom.web import api, dashboard, events, listener_api, previews
from postroom.web.auth import Caller, require_admin
from postroom.web.errors import BodyLimit, NoNulInUrl, install_error_handlers
from postroom.web.openapi import install_true_openapi
from postroom.web.throttle import Throttle
from postroom.worker import Worker, retention


def create_app(
    settings: Settings,
    *,
    run_worker: bool = True,
    dev: bool = False,
    store: Store | None = None,
    admin_token: str | None = None,
    smtp_sockets: Sequence[BoundSocket] = (),
) -> FastAPI:
    """Build the ASGI app for ``postroom serve``.

    ``admin_token`` guards /admin and /intake (``settings.serve.admin_token`` when not given);
    ``dev`` needs no token and shows message bodies. ``smtp_sockets`` (from
    :func:`~postroom.intake.listener_sockets.bind_sockets`) run the SMTP listener.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.store = store or open_store(settings.dsn)
        await app.state.store.migrate()
        app.state.tenants = TenantRegistry(settings, app.state.store)
        app.state.event_intake = EventIntake(app.state.store, app.state.tenants, app.state.metrics)
        app.state.webhook_sender = WebhookSender(app.state.store, app.state.tenants)
        stop = asyncio.Event()
        after = asyncio.create_task(
            after_handoff(app.state.event_intake, app.state.webhook_sender, stop)
        )
        task = None
        daily = asyncio.create_task(
            retention.run_daily(app.state.store, app.state.tenants.settings, stop)
        )
        if run_worker:
            worker = Worker(
                app.state.store, settings, tenants=app.state.tenants, metrics=app.state.metrics
            )
            task = asyncio.create_task(worker.run(stop))
        app.state.worker_task = task
        listener = None
        if smtp_sockets:
            listener = Listener(app.state.store, app.state.tenants.settings, settings, dev=dev)
            await listener.start(smtp_sockets)
        app.state.listener = listener
        try:
            yield
        finally:
            if listener is not None:
                await listener.stop()
            stop.set()
            if task is not None:
                await task
            await after
            await daily
            if store is None:
                await app.state.store.close()

    app = FastAPI(
        title="Postroom",
        version=__version__,
        lifespan=lifespan,
        docs_url="/docs" if dev else None,
        redoc_url=None,
        # Outside development the schema is for the operator: served below behind the token.
        openapi_url="/openapi.json" if dev else None,
    )
    app.state.dev = dev
    app.state.admin_token = admin_token or settings.serve.admin_token
    app.state.metrics = Metrics()
    app.state.throttle = Throttle()
    install_error_handlers(app)
    install_true_openapi(app)
    app.add_middleware(BodyLimit)
    if settings.serve.trusted_proxies:  # the client is then the right-most untrusted hop
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.serve.trusted_proxies)
    app.add_middleware(NoNulInUrl)
    app.include_router(api.router)
    app.include_router(previews.router)
    app.include_router(events.router)
    app.include_router(listener_api.router)

    @app.get("/health/alive", tags=["health"])
    async def alive() -> dict[str, str]:
        """The process answers."""
        return {"status": "ok"}

    @app.get("/health/ready", tags=["health"])
    async def ready() -> JSONResponse:
        """The database answers, and the in-process worker (unless ``--no-worker``) runs."""
        try:
            await app.state.store.ping()
        except Exception as exc:
            return JSONResponse(
                {"status": "unavailable", "reason": f"database: {type(exc).__name__}"},
                status_code=503,
            )
        task: asyncio.Task[object] | None = getattr(app.state, "worker_task", None)
        if task is not None and task.done():
            return JSONResponse(
                {"status": "unavailable", "reason": "the worker is not running"}, status_code=503
            )
        return JSONResponse({"status": "ok"})

    @app.get("/metrics", tags=["health"], response_class=PlainTextResponse)
    async def metrics() -> Response:
        """Prometheus text format."""
        app.state.metrics.set_queue(await app.state.store.count_by_status())
        app.state.metrics.set_lanes(await app.state.store.lane_summary())
        return Response(app.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    if not dev:

        @app.get("/openapi.json", include_in_schema=False)
        async def openapi(_caller: Annotated[Caller, Depends(require_admin)]) -> JSONResponse:
            """The OpenAPI document (admin token required outside development)."""
            return JSONResponse(app.openapi())

    dashboard.install(app)

    return app
