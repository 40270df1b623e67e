"""The overview's arithmetic: per-tenant counts, the chart's geometry, failure ranking."""

from __future__ import annotations

from datetime import UTC, datetime

from postroom.models import Status
from postroom.store.base import Activity, ActivityCount, FailureCount
from postroom.web.dashboard.overview import HOURS, build_chart, failures, tenant_counts

SINCE = datetime(2025, 1, 2, 10, 30, tzinfo=UTC)

ACTIVITY = Activity(
    counts=[
        ActivityCount("default", Status.SENT, HOURS - 1, 7),
        ActivityCount("default", Status.ABANDONED, HOURS - 1, 2),
        ActivityCount("default", Status.SENT, 0, 3),
        ActivityCount("acme", Status.QUEUED, 5, 1),
        ActivityCount("gone", Status.SENT, 3, 4),
    ],
    failures=[
        FailureCount("default", "auth_failed", Status.ABANDONED, 2),
        FailureCount("acme", "greylisted", Status.QUEUED, 1),
        FailureCount("acme", "auth_failed", Status.ABANDONED, 1),
        FailureCount("acme", "not_a_code_we_know", Status.ABANDONED, 1),
    ],
)


def test_last_hour_is_the_newest_slice_and_unknown_tenants_still_count() -> None:
    rows = {row.tenant: row for row in tenant_counts(ACTIVITY, ["default", "acme", "quiet"])}
    assert list(rows) == ["default", "acme", "quiet", "gone"]
    assert rows["default"].hour == {"queued": 0, "processing": 0, "sent": 7, "abandoned": 2}
    assert rows["default"].day["sent"] == 10
    assert rows["acme"].hour["queued"] == 0 and rows["acme"].day["queued"] == 1
    assert rows["quiet"].day == dict.fromkeys(["queued", "processing", "sent", "abandoned"], 0)


def test_the_chart_stacks_sent_abandoned_and_pending_per_hour() -> None:
    chart = build_chart(ACTIVITY, SINCE)
    assert chart.peak == 9 and [v for _, v in chart.y_ticks] == [0, 5, 10]
    assert len(chart.rows) == HOURS and chart.rows[0] == ("10:30–11:30", 3, 0, 0)
    newest = [bar for bar in chart.bars if bar.label.startswith("09:30")]
    assert [bar.kind for bar in newest] == ["sent", "abandoned"]
    sent, abandoned = newest
    assert abs(abandoned.y + abandoned.height - sent.y) < 0.2  # stacked
    assert abs(sent.height / abandoned.height - 7 / 2) < 0.01
    assert all(bar.y >= 0 and bar.y + bar.height <= chart.height for bar in chart.bars)
    assert chart.x_ticks[0][1:] == ("24 h ago", "start") and chart.x_ticks[-1][1] == "now"
    empty = build_chart(Activity([], []), SINCE)
    assert empty.bars == [] and [v for _, v in empty.y_ticks] == [0, 1]


def test_failures_rank_codes_with_the_catalogue_fix() -> None:
    ranked = failures(ACTIVITY)
    assert [f.code for f in ranked] == ["auth_failed", "greylisted", "not_a_code_we_know"]
    auth = ranked[0]
    assert (auth.abandoned, auth.retrying, auth.tenants) == (3, 0, ["default", "acme"])
    assert "password" in auth.fix
    assert ranked[1].retrying == 1 and ranked[2].fix == ""
    assert len(failures(ACTIVITY, limit=1)) == 1
