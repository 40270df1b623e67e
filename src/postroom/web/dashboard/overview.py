"""The overview: what happened in the last hour and day per tenant, the queue, a chart of
sent and failed messages over time, and the most frequent reasons for failure with their fix."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Depends, Request, Response

from postroom.diagnosis.catalogue import entry_of
from postroom.models import Status
from postroom.store.base import Activity
from postroom.web.dashboard.pages import (
    DashboardRoute,
    render,
)
from postroom.web.dashboard.session import require_viewer
from postroom.web.state import registry, store

router = APIRouter(
    route_class=DashboardRoute, include_in_schema=False, dependencies=[Depends(require_viewer)]
)

HOURS = 24
STATUSES = [s.value for s in Status]


@dataclass
class TenantCounts:
    """Messages of one tenant created in the last hour and the last day, by status now."""

    tenant: str
    hour: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    day: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))


@dataclass
class Failure:
    """One diagnosis code of the last day: how many messages it stopped, and the fix."""

    code: str
    abandoned: int
    retrying: int
    tenants: list[str]
    cause: str
    fix: str

    @property
    def total(self) -> int:
        """Abandoned and retrying together."""
        return self.abandoned + self.retrying


@dataclass(frozen=True)
class Bar:
    """One stacked segment of the chart, in SVG user units."""

    x: float
    y: float
    width: float
    height: float
    kind: str
    label: str


@dataclass
class Chart:
    """The hourly chart: bars, axis ticks and the numbers behind them (for the data table)."""

    width: int
    height: int
    bars: list[Bar]
    y_ticks: list[tuple[float, int]]
    x_ticks: list[tuple[float, str, str]]  # x, label, text-anchor
    rows: list[tuple[str, int, int, int]]  # hour label, sent, abandoned, pending
    peak: int


PLOT = {"left": 44, "right": 8, "top": 10, "bottom": 26}


def _nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, ... that is at least ``value``."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def build_chart(
    activity: Activity, since: datetime, *, width: int = 720, height: int = 170
) -> Chart:
    """Stacked bars per hour since ``since``: sent, abandoned, still queued or processing."""
    per_slot = [dict.fromkeys(STATUSES, 0) for _ in range(HOURS)]
    for count in activity.counts:
        if 0 <= count.slot < HOURS:
            per_slot[count.slot][count.status.value] += count.count
    series = [
        (
            slot["sent"],
            slot["abandoned"],
            slot["queued"] + slot["processing"],
        )
        for slot in per_slot
    ]
    peak = max((sum(s) for s in series), default=0)
    top = _nice_ceiling(max(peak, 1))
    plot_w = width - PLOT["left"] - PLOT["right"]
    plot_h = height - PLOT["top"] - PLOT["bottom"]
    slot_w = plot_w / HOURS
    bars: list[Bar] = []
    rows: list[tuple[str, int, int, int]] = []
    x_ticks: list[tuple[float, str, str]] = []
    for n, (sent, abandoned, pending) in enumerate(series):
        start = since + timedelta(hours=n)
        label = f"{start.astimezone(UTC):%H:%M}–{start.astimezone(UTC) + timedelta(hours=1):%H:%M}"
        rows.append((label, sent, abandoned, pending))
        x = PLOT["left"] + n * slot_w + slot_w * 0.15
        base: float = PLOT["top"] + plot_h
        for kind, value in (("sent", sent), ("abandoned", abandoned), ("pending", pending)):
            if value <= 0:
                continue
            h = max(plot_h * value / top, 1.0)
            base -= h
            bars.append(
                Bar(
                    round(x, 1),
                    round(base, 1),
                    round(slot_w * 0.7, 1),
                    round(h, 1),
                    kind,
                    f"{label} UTC: {value} {kind}",
                )
            )
        if n % 4 == 0:
            anchor = "start" if n == 0 else "middle"
            x_ticks.append((round(PLOT["left"] + n * slot_w, 1), f"{HOURS - n} h ago", anchor))
    x_ticks.append((float(width - PLOT["right"]), "now", "end"))
    values = [0, top // 2, top] if top % 2 == 0 else [0, top]
    y_ticks = [(round(PLOT["top"] + plot_h - plot_h * v / top, 1), v) for v in values]
    return Chart(width, height, bars, y_ticks, x_ticks, rows, peak)


def tenant_counts(activity: Activity, tenants: list[str]) -> list[TenantCounts]:
    """Per tenant (every configured one, then any other with messages): the last hour is
    the newest slice, the day all of them."""
    table = {name: TenantCounts(name) for name in tenants}
    for count in activity.counts:
        row = table.setdefault(count.tenant, TenantCounts(count.tenant))
        row.day[count.status.value] += count.count
        if count.slot == HOURS - 1:
            row.hour[count.status.value] += count.count
    return list(table.values())


def failures(activity: Activity, *, limit: int = 8) -> list[Failure]:
    """The most frequent latest diagnosis codes, with the catalogue's cause and fix."""
    by_code: dict[str, Failure] = {}
    for item in activity.failures:
        entry = entry_of(item.code)
        failure = by_code.setdefault(
            item.code,
            Failure(
                item.code,
                0,
                0,
                [],
                entry.cause if entry else "",
                entry.fix if entry else "",
            ),
        )
        if item.status is Status.ABANDONED:
            failure.abandoned += item.count
        else:
            failure.retrying += item.count
        if item.tenant not in failure.tenants:
            failure.tenants.append(item.tenant)
    ranked = sorted(by_code.values(), key=lambda f: (-f.total, f.code))
    return ranked[:limit]


@router.get("/")
async def overview(request: Request) -> Response:
    """The overview page."""
    now = datetime.now(UTC)
    since = now - timedelta(hours=HOURS)
    activity = await store(request).activity(since=since, step=timedelta(hours=1))
    pending = await store(request).count_pending()
    next_due = await store(request).next_due()
    settings = await registry(request).settings()
    rows = tenant_counts(activity, settings.tenant_names())
    totals = TenantCounts("all tenants")
    for row in rows:
        for status in STATUSES:
            totals.hour[status] += row.hour[status]
            totals.day[status] += row.day[status]
    return render(
        request,
        "overview.html",
        title="Overview",
        nav="overview",
        rows=rows,
        totals=totals,
        pending=pending,
        next_due=next_due,
        now=now,
        chart=build_chart(activity, since),
        failures=failures(activity),
    )
