"""End to end in headless Chromium: events produced to Kafka, written by the real sink and
folded by the real aggregate worker; the page must show exactly what the aggregate tables hold,
follow new events, and find a user's events. A screenshot is kept in ``artifacts/``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from pydantic import SecretStr

from schemas.config import KafkaSettings, TopicSettings
from tests.brainstream.dashboard.pipeline import (
    dashboard_app,
    end_offsets,
    fences_caught_up,
    free_port,
    make_events,
    produce,
    raw_count,
    running_sink,
    running_worker,
    serving,
    sql_rows,
    unique,
    wait_for,
)
from tests.fixtures.services import PgSchema, Services

pytestmark = pytest.mark.integration

ARTIFACTS = Path(__file__).resolve().parents[3] / "artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
USERS = [f"user-{i:02d}" for i in range(9)]
TOKEN = "browser-test-token"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield b
        b.close()


def _top_from_tables(conninfo: str) -> dict[str, tuple[int, int]]:
    """The 1 h window straight from the aggregate tables: events and distinct users per type."""
    since = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=59)
    rows = sql_rows(
        conninfo,
        "SELECT t.event_type, t.n, u.users FROM"
        " (SELECT event_type, sum(event_count)::bigint AS n FROM agg_type_buckets"
        "  WHERE granularity = 'minute' AND bucket >= %(since)s GROUP BY 1) AS t"
        " JOIN (SELECT event_type, count(DISTINCT user_id) AS users FROM agg_user_days"
        "  WHERE last_seen >= %(since)s GROUP BY 1) AS u"
        " USING (event_type)",
        {"since": since},
    )
    return {str(t): (int(n), int(u)) for t, n, u in rows}


def _top_on_page(page: Page) -> dict[str, tuple[int, int]]:
    rows: list[list[Any]] = page.eval_on_selector_all(
        "#top-table tbody tr[data-type]",
        "rows => rows.map(r => [r.dataset.type, Number(r.cells[1].dataset.value),"
        " Number(r.cells[2].dataset.value)])",
    )
    return {str(t): (int(n), int(u)) for t, n, u in rows}


def _value(page: Page, selector: str) -> int | None:
    raw = page.get_attribute(selector, "data-value")
    return int(raw) if raw not in (None, "") else None


def _series_total(page: Page) -> int:
    total: float = page.eval_on_selector_all(
        "#series-table tbody td[data-value]",
        "cells => cells.reduce((s, c) => s + Number(c.dataset.value), 0)",
    )
    return int(total)


def _lags(page: Page, group: str) -> list[int]:
    values: list[float] = page.eval_on_selector_all(
        f'#lag-table tbody tr[data-group="{group}"][data-source="kafka"]',
        "rows => rows.map(r => Number(r.cells[5].dataset.value))",
    )
    return [int(v) for v in values]


def _page_matches_tables(page: Page, conninfo: str) -> bool:
    expected = _top_from_tables(conninfo)
    total = sum(n for n, _ in expected.values())
    return (
        _top_on_page(page) == expected
        and _value(page, "#total-events") == total
        and _series_total(page) == total
    )


def _timeline_ids(page: Page) -> list[str]:
    ids: list[str] = page.eval_on_selector_all(
        "#user-timeline tbody tr", "rows => rows.map(r => r.dataset.eventId)"
    )
    return ids


def _lag_zero(page: Page, group: str) -> Callable[[], bool]:
    return lambda: _lags(page, group) == [0, 0, 0]


def _grown(page: Page, shown: int) -> Callable[[], bool]:
    return lambda: len(_timeline_ids(page)) > shown


def test_dashboard_shows_the_aggregates_follows_new_events_and_finds_users(
    browser: Browser,
    services: Services,
    topics: TopicSettings,
    pg_schema: PgSchema,
    tmp_path: Path,
) -> None:
    kafka, conninfo = services.kafka, pg_schema.conninfo
    sink_group, worker_group = unique("sink"), unique("worker")
    produce(kafka, topics.events, make_events(150, USERS))
    with (
        running_sink(kafka, topics, conninfo, sink_group, free_port()),
        running_worker(
            kafka,
            topics,
            services.postgres_dsn,
            pg_schema.name,
            worker_group,
            free_port(),
            tmp_path / "worker.log",
        ),
    ):
        _wait_for_pipeline(kafka, topics, conninfo, 150)
        app = dashboard_app(
            kafka, topics, conninfo, (sink_group, worker_group), token=SecretStr(TOKEN)
        )
        with serving(app) as url:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.goto(url)
            wait_for(lambda: _page_matches_tables(page, conninfo), 30, "page == tables")
            assert _value(page, "#total-events") == 150
            assert _value(page, "#total-users") == len(USERS)
            assert page.get_attribute("#series-chart", "aria-label") is not None
            for group in (sink_group, worker_group):
                wait_for(_lag_zero(page, group), 30, f"{group}'s lag at 0")
            wait_for(lambda: page.inner_text("#health-state") == "Healthy", 15, "healthy")

            # New events move the numbers; the page follows without a reload.
            produce(kafka, topics.events, make_events(60, USERS))
            _wait_for_pipeline(kafka, topics, conninfo, 210)
            wait_for(lambda: _value(page, "#total-events") == 210, 30, "the page to show 210")
            wait_for(lambda: _page_matches_tables(page, conninfo), 30, "page == tables again")

            _look_up_a_user(page, conninfo, USERS[4])

            # A longer window shows the same events in hour buckets.
            page.check('input[name="window"][value="24h"]')
            wait_for(lambda: "hour" in page.inner_text("#series-granularity"), 15, "24h window")
            wait_for(lambda: _series_total(page) == 210, 15, "24h series total")
            page.check('input[name="window"][value="1h"]')
            wait_for(lambda: "minute" in page.inner_text("#series-granularity"), 15, "1h window")
            wait_for(lambda: _series_total(page) == 210, 15, "1h series total")
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "dashboard-e2e.png"), full_page=True)
            page.close()


def _wait_for_pipeline(
    kafka: KafkaSettings, topics: TopicSettings, conninfo: str, count: int
) -> None:
    """Until the sink wrote ``count`` rows and the worker's fences reached the end offsets."""
    ends = end_offsets(kafka, topics.events, topics.events_partitions)
    assert sum(ends.values()) == count
    wait_for(lambda: raw_count(conninfo) == count, 60, f"the sink to write {count} rows")
    wait_for(lambda: fences_caught_up(conninfo, topics.events, ends), 120, "the worker")


def _look_up_a_user(page: Page, conninfo: str, user: str) -> None:
    """The lookup is refused without the token; with it, it finds the user's events, newest
    first, paged; counts match the raw rows."""
    expected = [
        str(r[0])
        for r in sql_rows(
            conninfo,
            "SELECT event_id FROM analytics_events WHERE user_id = %(u)s"
            " ORDER BY occurred_at DESC, event_id DESC",
            {"u": user},
        )
    ]
    assert len(expected) > 10
    page.fill("#user-id", user)
    page.click("#user-form button[type=submit]")  # no token yet: refused, nothing shown
    wait_for(lambda: "token" in page.inner_text("#user-status"), 15, "the 401 to be shown")
    assert _timeline_ids(page) == []
    page.fill("#api-token", TOKEN)  # log in with the token
    page.click("#user-form button[type=submit]")
    wait_for(lambda: len(_timeline_ids(page)) == 10, 15, "the first timeline page")
    assert _timeline_ids(page) == expected[:10]
    counts: list[float] = page.eval_on_selector_all(
        "#user-counts tbody td[data-value]", "cells => cells.map(c => Number(c.dataset.value))"
    )
    assert int(sum(counts)) == len(expected)
    while page.is_visible("#user-more"):
        shown = len(_timeline_ids(page))
        page.click("#user-more")
        wait_for(_grown(page, shown), 15, "the next page")
    assert _timeline_ids(page) == expected
