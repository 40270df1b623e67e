"""Jsonnet request bodies for HTTP delivery: where a body comes from, and evaluating it safely.

A body is a Jsonnet function of one top-level argument, ``ctx`` . It comes from
``file://PATH``, ``base64://DATA``, ``https://URL`` (fetched once, when the configuration is
loaded, and cached) or is inline Jsonnet text; without one, :data:`DEFAULT_BODY` is Ory's
default payload.

The ``jsonnet`` library can neither be interrupted nor limited in memory, so every evaluation
runs in a child process (:mod:`postroom.render.jsonnet_child`) that the parent can kill:

- :class:`JsonnetPool` keeps a few such children for the worker; an evaluation that takes longer
  than :attr:`JsonnetLimits.timeout` is killed and its child replaced, one that passes the memory
  cap (``RLIMIT_AS``) dies by itself, and an output larger than :attr:`JsonnetLimits.max_output`
  is refused. Each of these, and a Jsonnet ``error``, is a :class:`JsonnetError`.
- :func:`check_body` compiles a body once while the configuration loads (in a short-lived
  child, within the same limits) and raises :class:`~postroom.errors.ConfigError` with the line
  of a syntax error.

Imports are allowed only in ``file://`` bodies, and only from the body's own directory.
"""

from __future__ import annotations

from postroom.render.jsonnet.body import (
    DEFAULT_BODY,
    JsonnetBody,
    JsonnetError,
    JsonnetLimits,
    JsonnetUnavailable,
    default_payload,
)
from postroom.render.jsonnet.check import BodyCheck, check_body
from postroom.render.jsonnet.forms import form_fields
from postroom.render.jsonnet.pool import JsonnetPool, default_pool_size
from postroom.render.jsonnet.sources import MAX_SOURCE, describe_source, fetch_body, load_body
from postroom.render.jsonnet.tidy import tidy_error

__all__ = [
    "DEFAULT_BODY",
    "MAX_SOURCE",
    "BodyCheck",
    "JsonnetBody",
    "JsonnetError",
    "JsonnetLimits",
    "JsonnetPool",
    "JsonnetUnavailable",
    "check_body",
    "default_payload",
    "default_pool_size",
    "describe_source",
    "fetch_body",
    "form_fields",
    "load_body",
    "tidy_error",
]
