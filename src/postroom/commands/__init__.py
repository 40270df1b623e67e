"""Groups of ``postroom`` sub-commands that register themselves on the main Typer app."""
