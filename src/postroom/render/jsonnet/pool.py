"""The pool of evaluator processes the worker uses: batches, limits, and a fresh child for
every one that had to be stopped."""

from __future__ import annotations

import asyncio
import json
import os
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from postroom.render.jsonnet.body import (
    JsonnetBody,
    JsonnetError,
    JsonnetLimits,
    JsonnetUnavailable,
)
from postroom.render.jsonnet.process import Child, ChildDied
from postroom.render.jsonnet.tidy import tidy_error, where


@dataclass(slots=True)
class _Pending:
    body: JsonnetBody
    ctx: str  # the message's ctx as JSON text, taken when it was queued
    future: asyncio.Future[str]
    since: float  # loop time it started waiting


class JsonnetPool:
    """Evaluates bodies in up to ``size`` child processes, started on demand and reused.

    Evaluations that wait while the children are busy go to a child together, in one Jsonnet
    evaluation (up to ``max_batch``): libjsonnet pays tens of milliseconds of set-up per
    evaluation, far more than a body costs. So a batch starts ``linger`` seconds after its first
    evaluation arrived (at once when ``max_batch`` are waiting), and while one batch makes
    normal progress the next evaluations wait and gather; another child takes them only when
    every running batch has taken longer than ``spill_after`` seconds (a runaway body, a batch
    being split).

    When a batch fails (a Jsonnet error, a limit), it is split in halves until the failing
    message is alone, so one bad message never fails another. A child that runs out of time is
    killed and a fresh one takes its place, so a runaway body costs its own message, never the
    worker.
    """

    def __init__(
        self,
        *,
        size: int = 2,
        limits: JsonnetLimits | None = None,
        max_batch: int = 32,
        spill_after: float = 0.25,
        linger: float = 0.005,
    ) -> None:
        self.size = max(1, size)
        self.limits = limits or JsonnetLimits()
        self.max_batch = max(1, max_batch)
        self.spill_after = spill_after
        self.linger = linger
        self._pending: deque[_Pending] = deque()
        self._idle: list[Child] = []
        self._dead: list[Child] = []
        self._started: dict[asyncio.Task[None], float] = {}
        self._recheck: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    async def evaluate(self, body: JsonnetBody, ctx: Mapping[str, Any]) -> str:
        """The body's output for ``ctx``, as compact JSON text.

        Raise :class:`JsonnetError` when the body fails or passes a limit, and
        :class:`JsonnetUnavailable` when no evaluator could be started.
        """
        if self._closed:
            raise RuntimeError("the Jsonnet pool is closed")
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        ctx_text = json.dumps(ctx, default=str)
        self._pending.append(_Pending(body, ctx_text, future, asyncio.get_running_loop().time()))
        self._dispatch()
        return await future

    def _dispatch(self) -> None:
        loop = asyncio.get_running_loop()
        while len(self._started) < self.size and self._pending and not self._closed:
            now = loop.time()
            fresh = [t for t in self._started.values() if now - t < self.spill_after]
            if fresh:  # a batch is on its way: let the waiting ones gather behind it
                self._wake_at(min(fresh) + self.spill_after)
                return
            oldest = self._pending[0].since
            if len(self._pending) < self.max_batch and now - oldest < self.linger:
                # Senders come back from their requests a moment apart: wait for them.
                self._wake_at(oldest + self.linger)
                return
            batch = self._take_batch()
            if not batch:
                return
            task = asyncio.create_task(self._run(batch))
            self._started[task] = now
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _wake_at(self, when: float) -> None:
        if self._recheck is not None:
            if self._recheck.when() <= when:
                return
            self._recheck.cancel()
        self._recheck = asyncio.get_running_loop().call_at(when, self._rechecked)

    def _rechecked(self) -> None:
        self._recheck = None
        self._dispatch()

    def _take_batch(self) -> list[_Pending]:
        """The oldest waiting evaluations that share the first one's body."""
        batch: list[_Pending] = []
        others: list[_Pending] = []
        while self._pending and len(batch) < self.max_batch:
            item = self._pending.popleft()
            if item.future.done():  # its caller gave up
                continue
            if not batch or item.body == batch[0].body:
                batch.append(item)
            else:
                others.append(item)
        self._pending.extendleft(reversed(others))
        return batch

    async def _run(self, batch: list[_Pending]) -> None:
        child: Child | None = self._idle.pop() if self._idle else None
        try:
            child = await self._evaluate(child, batch)
        except JsonnetUnavailable as exc:
            self._fail(batch, exc)
        except Exception as exc:  # a bug or a garbled answer: the messages are worth a retry
            self._fail(batch, JsonnetUnavailable(f"the Jsonnet evaluator failed: {exc!r}"))
        finally:
            self._fail(batch, JsonnetUnavailable("the Jsonnet pool was closed"))
            if child is not None and child.alive and not self._closed:
                self._idle.append(child)
            elif child is not None:
                self._retire(child)
            current = asyncio.current_task()
            if current is not None:
                self._started.pop(current, None)
            self._dispatch()

    async def _evaluate(self, child: Child | None, items: list[_Pending]) -> Child | None:
        """Evaluate ``items`` on ``child`` (started when None); settle every item's future and
        return the child that is still usable, if any."""
        items = [item for item in items if not item.future.done()]
        if not items:
            return child
        if child is None:
            child = await Child.start(self.limits)
        body = items[0].body
        request = {
            "name": body.name,
            "source": body.source,
            "root": body.root,
            "ctxs": "[" + ",".join(item.ctx for item in items) + "]",
        }
        failure: JsonnetError
        try:
            answer = await asyncio.wait_for(child.call(request), self.limits.timeout)
        except TimeoutError:
            self._retire(child)
            child = None
            failure = JsonnetError(
                f"the body took longer than {self.limits.timeout:g}s to evaluate "
                "(an endless loop or far too much work) and was stopped",
                limit="time",
            )
        except ChildDied:
            self._retire(child)
            child = None
            failure = JsonnetError(
                f"the body used more than {self.limits.memory // (1024 * 1024)} MiB of memory "
                "and was stopped",
                limit="memory",
            )
        except BaseException:
            self._retire(child)
            raise
        else:
            if "ok" in answer:
                for item, result in zip(items, answer["ok"], strict=True):
                    if "ok" in result:
                        item.future.set_result(result["ok"])
                    else:
                        item.future.set_exception(
                            JsonnetError(
                                f"the body produced more than "
                                f"{self.limits.max_output // 1024} KiB of output and was refused",
                                limit="output",
                            )
                        )
                return child
            failure = self._failure(answer, body)
        if len(items) == 1:
            items[0].future.set_exception(failure)
            return child
        half = len(items) // 2
        child = await self._evaluate(child, items[:half])
        return await self._evaluate(child, items[half:])

    @staticmethod
    def _failure(answer: Mapping[str, Any], body: JsonnetBody) -> JsonnetError:
        if answer.get("limit") == "memory":
            return JsonnetError(str(answer["error"]), limit="memory")
        message, line, column = tidy_error(str(answer["error"]), body.name, line_offset=1)
        return JsonnetError(f"{message}{where(line, column)}", line=line, column=column)

    @staticmethod
    def _fail(items: list[_Pending], error: Exception) -> None:
        for item in items:
            if not item.future.done():
                item.future.set_exception(error)

    def _retire(self, child: Child) -> None:
        child.kill()
        self._dead.append(child)

    async def close(self) -> None:
        """Stop every child; the pool may not be used afterwards."""
        self._closed = True
        if self._recheck is not None:
            self._recheck.cancel()
            self._recheck = None
        for item in self._pending:
            if not item.future.done():
                item.future.set_exception(RuntimeError("the Jsonnet pool is closed"))
        self._pending.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        children, self._idle = self._idle, []
        for child in children:
            self._retire(child)
        dead, self._dead = self._dead, []
        await asyncio.gather(*(child.wait() for child in dead))


def default_pool_size() -> int:
    """Children per pool: Jsonnet is CPU-bound, so as many as the machine has cores (two at
    least, so that a runaway body never stalls every other message; four at most)."""
    return max(2, min(4, os.cpu_count() or 1))
