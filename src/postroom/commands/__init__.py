"""Groups of ``postroom`` sub-commands that register themselves on the main Typer app."""

from __future__ import annotations
