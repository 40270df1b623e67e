"""Rendering: template lookup (tenant override -> built-ins), Jinja2 sandbox, MIME bytes.

Import from the submodules (``render.templates``, ``render.mime``, ``render.jsonnet``): each
is needed by different commands, and Jinja2 and Jsonnet are slow to import.
"""
