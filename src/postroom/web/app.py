"""The HTTP app: health checks now; the admin API, intake and dashboard arrive on top of it.

``create_app`` opens the store, migrates it, and runs a worker in the same event loop unless
told not to.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse

from postroom.config import Settings
from postroom.store import MessageFilter, Store, open_store
from postroom.worker import Worker


def create_app(
    settings: Settings,
    *,
    run_worker: bool = True,
    dev: bool = False,
    store: Store | None = None,
) -> FastAPI:
    """Build the ASGI app for ``postroom serve``."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.store = store or open_store(settings.dsn)
        await app.state.store.migrate()
        stop = asyncio.Event()
        task = None
        if run_worker:
            task = asyncio.create_task(Worker(app.state.store, settings).run(stop))
        try:
            yield
        finally:
            stop.set()
            if task is not None:
                await task
            if store is None:
                await app.state.store.close()

    app = FastAPI(title="Postroom", lifespan=lifespan, docs_url=None, redoc_url=None)

    @app.get("/health/alive")
    async def alive() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/health/ready")
    async def ready() -> JSONResponse:
        try:
            await app.state.store.ping()
        except Exception as exc:
            return JSONResponse(
                {"status": "unavailable", "reason": f"database: {type(exc).__name__}"},
                status_code=503,
            )
        return JSONResponse({"status": "ok"})

    @app.get("/", response_class=HTMLResponse)
    async def index() -> str:
        if not dev:
            return (
                "<!doctype html><title>Postroom</title><p>Postroom is running. The delivery "
                "dashboard needs sign-in, which is not built yet: start with <code>--dev</code> "
                "on a loopback address to see it, or use <code>postroom messages list</code>.</p>"
            )
        rows = await app.state.store.list_messages(MessageFilter(limit=50))
        expose = dev or settings.courier.expose_message_bodies
        body = "".join(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>".format(
                html.escape(m.created_at.strftime("%Y-%m-%d %H:%M:%S")),
                html.escape(m.tenant),
                html.escape(m.recipient),
                html.escape(m.template_type.value),
                html.escape(m.status.value),
                html.escape(m.last_error.code if m.last_error else ""),
            )
            + (
                f"<tr><td></td><td colspan=5><small>{html.escape(m.subject)}</small></td></tr>"
                if expose
                else ""
            )
            for m in rows
        )
        return (
            "<!doctype html><html lang=en><meta charset=utf-8><title>Postroom</title>"
            "<meta http-equiv=refresh content=5>"
            "<body style='font-family:system-ui;margin:2rem'><h1>Postroom</h1>"
            "<p>The 50 newest messages (refreshes every 5 s).</p>"
            "<table cellpadding=4><tr><th>created</th><th>tenant</th><th>recipient</th>"
            f"<th>template</th><th>status</th><th>last error</th></tr>{body}</table>"
        )

    return app
