"""Running the app under uvicorn."""

from __future__ import annotations

import signal
from types import FrameType

import uvicorn
from fastapi import FastAPI


class GracefulServer(uvicorn.Server):
    """uvicorn re-raises SIGTERM after its graceful shutdown; Postroom's graceful stop exits 0."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """Stop serving; a second Ctrl-C forces the exit."""
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        self.should_exit = True


def run_server(app: FastAPI, *, host: str, port: int) -> None:
    """Serve ``app`` until SIGTERM or Ctrl-C; the app's lifespan stops its worker cleanly."""
    GracefulServer(uvicorn.Config(app, host=host, port=port, log_level="warning")).run()
