"""The outbox: every message becomes an ``.eml`` file, for development without a mail server."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from postroom.errors import DeliveryError
from postroom.transports.base import Envelope, SendResult


class OutboxTransport:
    """Writes ``<outbox>/<message id>.eml`` atomically (temporary file, fsync, rename)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def _write(self, envelope: Envelope) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.directory / f"{envelope.message_id}.eml"
        tmp = final.with_suffix(".eml.tmp")
        with open(tmp, "wb") as fh:
            fh.write(envelope.data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        return final

    async def send(self, envelope: Envelope) -> SendResult:
        """Write the message; raise ``DeliveryError`` (stage ``data``) if the disk refuses."""
        try:
            path = await asyncio.to_thread(self._write, envelope)
        except OSError as exc:
            raise DeliveryError(
                f"cannot write to the outbox {self.directory}: {exc.strerror}", stage="data"
            ) from exc
        return SendResult(reply=f"written to {path}", transport="outbox")

    async def close(self) -> None:
        """Nothing to release."""
