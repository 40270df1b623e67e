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
    default_payload,
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
    'function(ctx) local s = std.repeat("0123456789", 100); [s for i in std.range(1, 1000)]',
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
    # No explicit subject and body in the data: the rendered email's, as Kratos's binary sends.
    assert (out["subject"], out["body"]) == ("Your login code", "Your code is 123456")
    assert len(out) == 11
    explicit = CTX | {"template_data": {"subject": "Explicit", "body": "Own text"}}
    out = json.loads(await pool.evaluate(JsonnetBody("default", DEFAULT_BODY), explicit))
    assert (out["subject"], out["body"]) == ("Explicit", "Own text")


@pytest.mark.parametrize(
    "data",
    [
        {"to": "you@example.org", "login_code": "123456"},
        {"to": "you@example.org", "recovery_url": "https://id.example.org/r?t=1&x=ü"},
        {"to": "you@example.org", "verification_code": 135791, "verification_url": "https://v"},
        {"to": "you@example.org", "registration_code": "9", "identity": {"id": "x"}},
        {"to": "you@example.org", "subject": "Grüße", "body": "Zeile 1\nZeile 2 \u2603"},
        {"to": "you@example.org", "recovery_code": None},
        {},
    ],
)
async def test_the_native_default_payload_is_what_the_jsonnet_body_produces(
    pool: JsonnetPool, data: dict[str, object]
) -> None:
    ctx = CTX | {"template_data": data}
    assert default_payload(ctx) == await pool.evaluate(JsonnetBody("default", DEFAULT_BODY), ctx)


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
    assert 0.9 <= elapsed < 5
    # The killed child is replaced: the next evaluation works.
    assert json.loads(await pool.evaluate(ECHO, CTX))["to"] == "you@example.org"


async def test_a_megabyte_of_output_is_refused(pool: JsonnetPool) -> None:
    with pytest.raises(JsonnetError) as caught:
        await pool.evaluate(BIG, CTX)  # four times the 256 KiB limit, made in a blink
    assert caught.value.limit in {"output", "memory"}
    assert json.loads(await pool.evaluate(ECHO, CTX))["n"] == 1


async def test_output_over_256_kib_is_refused(pool: JsonnetPool) -> None:
    over = JsonnetBody("over.jsonnet", 'function(ctx) std.repeat("x", 256 * 1024)')
    under = JsonnetBody("under.jsonnet", 'function(ctx) std.repeat("x", 256 * 1024 - 10)')
    with pytest.raises(JsonnetError) as caught:
        await pool.evaluate(over, CTX)
    assert caught.value.limit == "output"
    assert str(caught.value) == "the body produced more than 256 KiB of output and was refused"
    assert len(await pool.evaluate(under, CTX)) == 256 * 1024 - 8


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


async def test_a_runaway_does_not_hold_up_other_evaluations() -> None:
    pool = JsonnetPool(size=2, limits=JsonnetLimits(timeout=3.0))
    finished: list[str] = []

    async def run(name: str, body: JsonnetBody) -> None:
        try:
            await pool.evaluate(body, CTX)
        finally:
            finished.append(name)

    try:
        runaway = asyncio.create_task(run("loop", LOOP))
        await asyncio.sleep(0.05)  # the loop has a child to itself by now
        results = await asyncio.gather(
            *(run(f"echo{i}", ECHO) for i in range(10)), runaway, return_exceptions=True
        )
    finally:
        await pool.close()
    assert isinstance(results[-1], JsonnetError) and results[-1].limit == "time"
    assert all(r is None for r in results[:-1])
    # The others went to the second child instead of waiting for the loop to be stopped.
    assert finished[-1] == "loop"


async def test_one_failing_message_does_not_fail_the_others_evaluated_with_it() -> None:
    # One child: evaluations that wait for it are evaluated together, and split on failure.
    pool = JsonnetPool(size=1, limits=JsonnetLimits(timeout=1.0))
    body = JsonnetBody(
        "picky.jsonnet",
        """function(ctx)
          if ctx.n == 7 then error "seven is not allowed"
          else if ctx.n == 11 then (local f(n) = f(n + 1) tailstrict; f(0))
          else { n: ctx.n }""",
    )
    try:
        results = await asyncio.gather(
            *(pool.evaluate(body, {"n": n}) for n in range(20)), return_exceptions=True
        )
    finally:
        await pool.close()
    for n, result in enumerate(results):
        if n == 7:
            assert isinstance(result, JsonnetError)
            assert str(result) == "seven is not allowed at line 2, column 30"
        elif n == 11:
            assert isinstance(result, JsonnetError) and result.limit == "time"
        else:
            assert result == f'{{"n":{n}}}'


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
