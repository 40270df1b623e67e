"""Evaluating Jsonnet bodies in killable child processes: results, errors and the limits."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import pytest

from postroom.errors import ConfigError
from postroom.render.jsonnet import (
    DEFAULT_BODY,
    JsonnetBody,
    JsonnetError,
    JsonnetLimits,
    JsonnetPool,
    check_body,
    form_fields,
    tidy_error,
)

CTX = {
    "recipient": "you@example.org",
    "subject": "Your login code",
    "body": "Your code is 123456",
    "html_body": None,
    "template_type": "login_code_valid",
    "template_data": {"to": "you@example.org", "login_code": "123456"},
    "message_type": "email",
}
LOOP = JsonnetBody("loop.jsonnet", "function(ctx) local f(n) = f(n + 1) tailstrict; f(0)")
BIG = JsonnetBody(
    "big.jsonnet",
    'function(ctx) local s = std.repeat("0123456789", 100); [s for i in std.range(1, 10000)]',
)
HUNGRY = JsonnetBody("hungry.jsonnet", 'function(ctx) std.length(std.repeat("x", 100000000))')
ECHO = JsonnetBody("echo.jsonnet", "function(ctx) { to: ctx.recipient, n: 1 }")


@pytest.fixture
async def pool() -> AsyncIterator[JsonnetPool]:
    p = JsonnetPool(size=2, limits=JsonnetLimits(timeout=1.0))
    yield p
    await p.close()


async def test_the_default_body_renders_ory_payload(pool: JsonnetPool) -> None:
    out = json.loads(await pool.evaluate(JsonnetBody("default", DEFAULT_BODY), CTX))
    assert out["login_code"] == "123456"
    assert out["to"] == "you@example.org"
    assert out["subject"] is None and out["body"] is None
    assert len(out) == 11


async def test_a_jsonnet_error_carries_its_message_and_line(pool: JsonnetPool) -> None:
    body = JsonnetBody(
        "/etc/postroom/mail.jsonnet",
        'function(ctx) {\n  to: ctx.recipient,\n  code: error "no code for " + ctx.recipient,\n}',
    )
    with pytest.raises(JsonnetError) as caught:
        await pool.evaluate(body, CTX)
    assert str(caught.value) == "no code for you@example.org at line 3, column 9"
    assert (caught.value.line, caught.value.limit) == (3, None)


async def test_a_missing_field_is_an_error_not_a_crash(pool: JsonnetPool) -> None:
    body = JsonnetBody("m.jsonnet", "function(ctx) { url: ctx.template_data.recovery_url }")
    with pytest.raises(JsonnetError) as caught:
        await pool.evaluate(body, CTX)
    assert "field does not exist: recovery_url" in str(caught.value)
    assert json.loads(await pool.evaluate(ECHO, CTX)) == {"to": "you@example.org", "n": 1}


async def test_an_endless_loop_is_stopped_at_the_time_limit(pool: JsonnetPool) -> None:
    started = time.monotonic()
    with pytest.raises(JsonnetError) as caught:
        await pool.evaluate(LOOP, CTX)
    elapsed = time.monotonic() - started
    assert caught.value.limit == "time"
    assert "longer than 1s" in str(caught.value)
    assert 0.9 <= elapsed < 3
    # The killed child is replaced: the next evaluation works.
    assert json.loads(await pool.evaluate(ECHO, CTX))["to"] == "you@example.org"


async def test_ten_megabytes_of_output_is_refused(pool: JsonnetPool) -> None:
    with pytest.raises(JsonnetError) as caught:
        await pool.evaluate(BIG, CTX)
    assert caught.value.limit in {"output", "memory"}
    assert json.loads(await pool.evaluate(ECHO, CTX))["n"] == 1


async def test_the_memory_cap_stops_a_hungry_body() -> None:
    pool = JsonnetPool(size=1, limits=JsonnetLimits(timeout=5.0, memory=128 * 1024 * 1024))
    try:
        started = time.monotonic()
        with pytest.raises(JsonnetError) as caught:
            await pool.evaluate(HUNGRY, CTX)
        assert caught.value.limit == "memory"
        assert "128 MiB" in str(caught.value)
        assert time.monotonic() - started < 5
        assert json.loads(await pool.evaluate(ECHO, CTX))["n"] == 1
    finally:
        await pool.close()


async def test_runaways_do_not_block_other_evaluations(pool: JsonnetPool) -> None:
    results = await asyncio.gather(
        pool.evaluate(LOOP, CTX),
        *(pool.evaluate(ECHO, CTX) for _ in range(10)),
        return_exceptions=True,
    )
    assert isinstance(results[0], JsonnetError)
    assert all(json.loads(r)["n"] == 1 for r in results[1:])  # type: ignore[arg-type]


async def test_children_are_reused(pool: JsonnetPool) -> None:
    await pool.evaluate(ECHO, CTX)
    first = {c.process.pid for c in pool._idle}
    for _ in range(5):
        await pool.evaluate(ECHO, CTX)
    assert {c.process.pid for c in pool._idle} == first


async def test_a_closed_pool_leaves_no_children(pool: JsonnetPool) -> None:
    await asyncio.gather(*(pool.evaluate(ECHO, CTX) for _ in range(4)))
    children = list(pool._idle)
    await pool.close()
    assert children and all(c.process.returncode is not None for c in children)


def test_check_reports_a_syntax_error_with_its_line() -> None:
    with pytest.raises(ConfigError) as caught:
        check_body(JsonnetBody("b.jsonnet", "function(ctx) {\n  a: 1\n  b: 2,\n}"))
    assert str(caught.value).startswith("Jsonnet syntax error at line 3, column 3:")


def test_check_evaluates_a_sample_when_asked() -> None:
    checked = check_body(ECHO, sample_ctx=CTX)
    assert json.loads(checked.sample_output or "") == {"to": "you@example.org", "n": 1}
    failing = JsonnetBody("f.jsonnet", "function(ctx) ctx.template_data.recovery_url")
    assert "recovery_url" in (check_body(failing, sample_ctx=CTX).sample_error or "")


def test_check_of_a_runaway_top_level_is_bounded() -> None:
    runaway = JsonnetBody("r.jsonnet", "local f(n) = f(n + 1) tailstrict; f(0)")
    started = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        check_body(runaway, limits=JsonnetLimits(timeout=0.5))
    assert "longer than" in str(caught.value)
    assert time.monotonic() - started < 15


def test_form_fields_flatten_scalars_and_drop_nulls() -> None:
    out = form_fields('{"to": "a@example.org", "n": 2, "t": true, "f": false, "html": null}')
    assert out == [("to", "a@example.org"), ("n", "2"), ("t", "true"), ("f", "false")]
    with pytest.raises(ValueError, match="'to' is an array"):
        form_fields('{"to": ["a", "b"]}')
    with pytest.raises(ValueError, match="not a string"):
        form_fields('"just text"')


def test_tidy_error_reads_static_and_runtime_errors() -> None:
    static = 'STATIC ERROR: b.jsonnet:3:5: unexpected: "}" while parsing terminal\n'
    assert tidy_error(static, "b.jsonnet") == ('unexpected: "}" while parsing terminal', 3, 5)
    runtime = "RUNTIME ERROR: boom\n\tb.jsonnet:(2:3)-(4:1)\tobject <anonymous>\n"
    assert tidy_error(runtime, "b.jsonnet") == ("boom", 2, 3)
