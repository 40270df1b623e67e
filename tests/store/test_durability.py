"""An acknowledged enqueue is on disk (SQLite, ``synchronous=FULL``): it survives the process
being killed and a power cut at the moment the caller was told yes.

A power cut loses what the operating system had not yet put on the disk: every write to a
file that no ``fsync``/``fdatasync`` of that file followed. The test runs a real process that
enqueues one message under ``strace``, kills it with SIGKILL as soon as it says the enqueue is
done, and rebuilds the disk as a power cut at that moment would leave it: the database files as
they were before the process started, plus only the writes a sync had made durable before the
answer. SQLite then opens that copy (recovering its WAL as after a real power cut) and the
message must be there. With the enqueue's ``synchronous`` at ``NORMAL`` the commit does not
wait for the disk and this test fails.

On PostgreSQL the server does the syncing, so the test watches the store's own server
processes with ``strace``: an enqueue's commit syncs the WAL before it answers
(``synchronous_commit=on``); a claim, the worker's bookkeeping, leaves that to the WAL writer
(``off``), as with SQLite's ``synchronous=NORMAL``.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import sys
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
from store_support import new

from postroom.errors import NotFoundError
from postroom.models import Message
from postroom.store import open_store

STRACE = shutil.which("strace")
CHILD = Path(__file__).with_name("enqueue_child.py")
SYSCALLS = "write,pwrite64,pwritev,pwritev2,ftruncate,fsync,fdatasync"
MAX_WRITE = 1024 * 1024  # bytes strace shows of one write (SQLite writes pages of 4 KiB)

# ``= ?``: the process was killed before strace saw the call return
_CALL = re.compile(r"^(?P<pid>\d+)\s+(?P<name>\w+)\((?P<args>.*)\)\s+=\s+(?P<ret>-?\d+|\?)")
_FD = re.compile(r"^(?P<fd>\d+)<(?P<path>(?:\\x[0-9a-f]{2})*)>")
_PWRITE = re.compile(
    r'^\d+<[^>]*>, "(?P<data>(?:\\x[0-9a-f]{2})*)"(?P<cut>\.\.\.)?, \d+, (?P<offset>\d+)$'
)


@dataclass(frozen=True)
class Op:
    """A change to one file: ``data`` written at ``offset``, or (data None) cut to ``offset``."""

    path: str
    offset: int
    data: bytes | None


def unhex(text: str) -> bytes:
    """The bytes of a string that ``strace -xx`` printed as ``\\xHH`` escapes."""
    return bytes.fromhex(text.replace("\\x", ""))


def calls(log: str) -> list[tuple[str, str]]:
    """(name, arguments) of every completed system call in an ``strace -f`` log, in order,
    with calls that another thread interrupted (``<unfinished ...>``) joined back together."""
    started: dict[str, str] = {}
    found: list[tuple[str, str]] = []
    for line in log.splitlines():
        if line.endswith("<unfinished ...>"):
            pid = line.split(None, 1)[0]
            started[pid] = line.removesuffix("<unfinished ...>").rstrip(", ")
            continue
        resumed = re.match(r"^(\d+)\s+<\.\.\. \w+ resumed>\s*(.*)$", line)
        if resumed:
            line = started.pop(resumed[1]) + (
                ", " + resumed[2] if not resumed[2].startswith(")") else resumed[2]
            )
        match = _CALL.match(line)
        if match:
            found.append((match["name"], match["args"]))
    return found


def durable_ops(log: str, files: set[str], answer: bytes) -> list[Op]:
    """The changes to ``files`` that a sync made durable before the process wrote ``answer``
    to its stdout: what a power cut at the moment of the answer leaves on the disk."""
    pending: dict[str, list[Op]] = {path: [] for path in files}
    durable: list[Op] = []
    for name, args in calls(log):
        fd = _FD.match(args)
        if fd is None:
            continue
        if name == "write" and fd["fd"] == "1":
            data = re.search(r'"((?:\\x[0-9a-f]{2})*)', args)
            if data and answer in unhex(data[1]):
                return durable
            continue
        path = unhex(fd["path"]).decode()
        if path not in files:
            continue
        if name == "pwrite64":
            write = _PWRITE.match(args)
            assert write and not write["cut"], f"strace cut a write short: {args[:200]}"
            data = unhex(write["data"])
            pending[path].append(Op(path, int(write["offset"]), data))
        elif name == "ftruncate":
            pending[path].append(Op(path, int(args.rsplit(",", 1)[1]), None))
        elif name in ("fsync", "fdatasync"):
            durable += pending[path]
            pending[path] = []
        else:  # write, pwritev...: SQLite writes with pwrite64 only; anything else is news
            raise AssertionError(f"{name} on {path}: this test does not replay it")
    raise AssertionError("the process never said the enqueue was done")


def rebuild(before: Path, ops: list[Op], original: Path, into: Path) -> Path:
    """The database ``into`` a fresh directory: the files of ``before`` with ``ops`` (made on
    the files of ``original``'s directory) applied."""
    into.mkdir()
    for file in before.iterdir():
        shutil.copy(file, into / file.name)
    for op in ops:
        target = into / Path(op.path).name
        with open(target, "r+b" if target.exists() else "w+b") as fh:
            if op.data is None:
                fh.truncate(op.offset)
            else:
                fh.seek(op.offset)
                fh.write(op.data)
    return into / original.name


async def stored(database: Path, message_id: str) -> Message | None:
    """The message as a store opened on ``database`` finds it, or None."""
    store = open_store(f"sqlite:///{database}")
    try:
        return await store.get(message_id)
    except NotFoundError:
        return None
    finally:
        await store.close()


async def test_an_acknowledged_enqueue_survives_a_kill_and_a_power_cut(tmp_path: Path) -> None:
    assert STRACE is not None, "this test needs strace (`make pytest` installs it)"
    database = (tmp_path / "live" / "queue.db").resolve()
    store = open_store(f"sqlite:///{database}")
    await store.migrate()
    await store.close()  # the last connection checkpoints: the disk holds the schema alone
    before = tmp_path / "before"
    shutil.copytree(database.parent, before)
    log = tmp_path / "strace.log"
    command = [STRACE, "-f", "-qq", "-y", "-xx", f"-s{MAX_WRITE}", f"-e{SYSCALLS}"]
    process = await asyncio.create_subprocess_exec(
        *command,
        f"-o{log}",
        sys.executable,
        str(CHILD),
        f"sqlite:///{database}",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(CHILD.parent)},
    )
    assert process.stdout is not None
    said = ""
    try:
        said = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
        assert said.startswith("enqueued "), f"the child said {said!r}"
        _, message_id, pid = said.split()
        os.kill(int(pid), signal.SIGKILL)  # the crash: no close, no checkpoint
    finally:
        if process.returncode is None and not said.startswith("enqueued "):
            process.kill()
        await process.wait()

    crashed = await stored(database, message_id)
    assert crashed is not None and crashed.recipient == "user0@example.org"

    files = {str(database), f"{database}-wal"}
    ops = durable_ops(log.read_text(), files, answer=f"enqueued {message_id}".encode())
    after = rebuild(before, ops, database, tmp_path / "after-power-cut")
    survived = await stored(after, message_id)
    assert survived is not None, (
        "the enqueue answered before its commit reached the disk: a power cut at that moment "
        "loses the message"
    )
    assert survived.recipient == "user0@example.org"


async def wal_syncs(pids: list[int], log: Path, work: Callable[[], Awaitable[object]]) -> int:
    """How many times the PostgreSQL backends ``pids`` synced a WAL file to disk while
    ``work`` ran (``strace`` attached to them first, detached after)."""
    assert STRACE is not None, "this test needs strace (`make pytest` installs it)"
    attach = [arg for pid in pids for arg in ("-p", str(pid))]
    tracer = await asyncio.create_subprocess_exec(
        STRACE,
        "-y",
        "-e",
        "trace=fsync,fdatasync",
        "-o",
        str(log),
        *attach,
        stderr=asyncio.subprocess.PIPE,
    )
    assert tracer.stderr is not None
    attached = 0
    while attached < len(pids):  # strace says "Process N attached" once it watches N
        line = await asyncio.wait_for(tracer.stderr.readline(), 30)
        assert line, f"strace could not attach to {pids}"
        attached += b"attached" in line
    try:
        await work()
    finally:
        tracer.send_signal(signal.SIGINT)  # detaches and leaves the backends running
        await tracer.wait()
    traced = await asyncio.to_thread(log.read_text)
    return sum("/pg_wal/" in line for line in traced.splitlines())


async def test_a_postgres_enqueue_waits_for_the_wal_flush_and_a_claim_does_not(
    pg_dsn: str, tmp_path: Path
) -> None:
    name = f"durability-{uuid.uuid4().hex[:8]}"
    store = open_store(f"{pg_dsn}?application_name={name}")
    await store.migrate()
    try:
        await store.enqueue([new(0)], max_attempts=3, ttl=0)  # opens the store's connections
        await store.claim(worker="w", limit=1, lease=60)
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (name,)
            ).fetchall()
        pids = [pid for (pid,) in rows]

        async def enqueue() -> None:
            for n in range(1, 6):
                await store.enqueue([new(n)], max_attempts=3, ttl=0)

        async def claim() -> None:
            for _ in range(5):
                await store.claim(worker="w", limit=1, lease=60)

        # Five commits, so that another database's commit flushing ours first (group commit
        # on a shared server) cannot hide the wait: each enqueue waits, most flush themselves.
        assert await wal_syncs(pids, tmp_path / "enqueue.log", enqueue) >= 1
        # The worker's bookkeeping leaves the flush to the WAL writer.
        assert await wal_syncs(pids, tmp_path / "claim.log", claim) == 0
    finally:
        await store.close()
