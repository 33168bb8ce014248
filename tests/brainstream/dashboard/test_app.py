"""The JSON endpoints against a real migrated schema (rows written through SQL, then folded)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest
from pydantic import SecretStr

from schemas.config import KafkaSettings, TopicSettings
from tests.brainstream.dashboard.pipeline import (
    WORKER_GROUP,
    dashboard_app,
    fold_aggregates,
    make_events,
    serving,
    sql_rows,
)
from tests.fixtures.services import PgSchema

pytestmark = pytest.mark.integration

USERS = [f"user-{i}" for i in range(6)]


def _insert(conninfo: str, count: int) -> None:
    events = make_events(count, USERS)
    with psycopg.connect(conninfo) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO analytics_events (event_id, occurred_at, kafka_partition, kafka_offset,"
            " schema_version, event_type, user_id, source, properties)"
            " VALUES (%s, %s, 0, %s, 1, %s, %s, %s, '{}')",
            [
                (e.event_id, e.occurred_at, i, e.type, e.user_id, e.source)
                for i, e in enumerate(events)
            ],
        )


@pytest.fixture
def client(
    kafka_settings: KafkaSettings, topics: TopicSettings, pg_schema: PgSchema
) -> Iterator[httpx.Client]:
    _insert(pg_schema.conninfo, 90)
    fold_aggregates(pg_schema.conninfo, topics.events)
    app = dashboard_app(kafka_settings, topics, pg_schema.conninfo, ("nobody-yet",))
    with serving(app) as url, httpx.Client(base_url=url, timeout=30) as c:
        yield c


def test_top_types_equal_the_aggregate_tables(client: httpx.Client, pg_schema: PgSchema) -> None:
    top = client.get("/api/top", params={"window": "1h"}).json()
    since = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=59)
    expected = sql_rows(
        pg_schema.conninfo,
        "SELECT event_type, sum(event_count)::bigint FROM agg_type_buckets"
        " WHERE granularity = 'minute' AND bucket >= %(since)s GROUP BY 1",
        {"since": since},
    )
    assert {t["event_type"]: t["events"] for t in top["types"]} == dict(expected)
    assert top["events"] == 90
    assert top["distinct_users"] == len(USERS)
    for t in top["types"]:
        assert 1 <= t["distinct_users"] <= len(USERS)


def test_series_has_one_count_per_minute_bucket(client: httpx.Client) -> None:
    series = client.get("/api/series", params={"window": "1h"}).json()
    assert series["granularity"] == "minute"
    assert len(series["buckets"]) == 60
    assert sum(sum(v) for v in series["counts"].values()) == 90
    week = client.get("/api/series", params={"window": "7d"}).json()
    assert week["granularity"] == "hour" and 145 <= len(week["buckets"]) <= 168
    assert sum(sum(v) for v in week["counts"].values()) == 90
    top = client.get("/api/top", params={"window": "7d"}).json()
    assert top["events"] == 90 and top["distinct_users"] == len(USERS)


def test_unknown_window_is_a_400(client: httpx.Client) -> None:
    response = client.get("/api/series", params={"window": "3w"})
    assert response.status_code == 400
    assert "1h" in response.json()["error"]


def test_user_lookup_pages_through_the_timeline(client: httpx.Client, pg_schema: PgSchema) -> None:
    expected = [
        str(r[0])
        for r in sql_rows(
            pg_schema.conninfo,
            "SELECT event_id FROM analytics_events WHERE user_id = 'user-3'"
            " ORDER BY occurred_at DESC, event_id DESC",
        )
    ]
    first = client.get("/api/users/user-3").json()
    assert sum(c["events"] for c in first["counts"]) == len(expected) == 15
    seen = [e["event_id"] for e in first["events"]]
    token = first["next"]
    while token:
        page = client.get("/api/users/user-3", params={"after": token}).json()
        assert page["counts"] is None
        seen += [e["event_id"] for e in page["events"]]
        token = page["next"]
    assert seen == expected
    assert client.get("/api/users/user-3", params={"after": "garbage"}).status_code == 400
    assert client.get("/api/users/nobody").json() == {
        "user_id": "nobody",
        "counts": [],
        "events": [],
        "next": None,
    }


def test_health_reports_lag_fences_and_last_writes(client: httpx.Client) -> None:
    health = client.get("/api/health").json()
    assert health["errors"] == {}
    groups = {(x["group"], x["source"]) for x in health["kafka"]["lags"]}
    assert groups == {("nobody-yet", "kafka"), (WORKER_GROUP, "fence")}  # fences: projections
    assert health["database"]["last_raw_write"] is not None
    assert health["database"]["last_aggregate_write"] is not None


def test_page_static_files_and_metrics_are_served(client: httpx.Client) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "User lookup" in page.text
    assert "/static/vendor/chartjs/chart.umd.min.js" in page.text
    assert client.get("/static/vendor/chartjs/chart.umd.min.js").status_code == 200
    assert client.get("/static/vendor/chartjs/LICENSE.md").status_code == 200
    metrics = client.get("/metrics").text
    assert 'brainstream_consumer_lag{group="nobody-yet",partition="0"}' in metrics
    assert 'brainstream_dashboard_requests_total{route="page",status="200"} 1.0' in metrics


def test_with_a_token_the_user_lookup_answers_401_without_it_and_200_with_it(
    kafka_settings: KafkaSettings, topics: TopicSettings, pg_schema: PgSchema
) -> None:
    _insert(pg_schema.conninfo, 30)
    token = SecretStr("dashboard-test-token")
    app = dashboard_app(kafka_settings, topics, pg_schema.conninfo, ("g",), token=token)
    with serving(app) as url, httpx.Client(base_url=url, timeout=30) as c:
        refused = [
            c.get("/api/users/user-3"),
            c.get("/api/users/user-3", headers={"Authorization": "Bearer wrong"}),
            c.get("/api/users/user-3", headers={"Authorization": "Basic dashboard-test-token"}),
        ]
        allowed = c.get(
            "/api/users/user-3", headers={"Authorization": "Bearer dashboard-test-token"}
        )
        settings = c.get("/api/settings").json()
        paths = ("/", "/health", "/healthz", "/metrics", "/api/top")
        open_paths = {p: c.get(p).status_code for p in paths}
    for response in refused:
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert "user-3" not in response.text
    assert 'error="invalid_token"' in refused[1].headers["www-authenticate"]
    assert [("not valid" in r.json()["error"]) for r in refused] == [False, True, False]
    assert allowed.status_code == 200 and allowed.json()["user_id"] == "user-3"
    assert len(allowed.json()["events"]) == 5  # 30 events over 6 users
    assert settings["token_required"] is True
    assert open_paths == {
        "/": 200,
        "/health": 200,
        "/healthz": 200,
        "/metrics": 200,
        "/api/top": 200,
    }
