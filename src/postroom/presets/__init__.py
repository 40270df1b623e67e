"""Provider presets as data: SMTP presets (``smtp.py``) and HTTP API presets (``http.py``)."""

from __future__ import annotations

from postroom.presets.base import Preset, RateLimit

__all__ = ["Preset", "RateLimit"]
