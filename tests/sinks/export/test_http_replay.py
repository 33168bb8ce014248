"""The export API (same code path as the CLI) and ``replay --to raw`` idempotence."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from pydantic import SecretStr

from schemas.config import KafkaSettings, TopicSettings
from sinks.config import SinkConfig
from sinks.export import ExportConfig, ExportRequest, LogRange, Manifest, export
from sinks.export.http import create_app
from sinks.export.jobs import Jobs
from sinks.export.progress import Progress
from sinks.replay import replay_to_raw
from tests.fixtures.services import PgSchema
from tests.sinks.export.helpers import events, produce, produce_raw, reader

pytestmark = pytest.mark.integration


class Client:
    """Synchronous calls into the ASGI app through httpx (no server, no socket)."""

    def __init__(self, jobs: Jobs, token: SecretStr | None = None) -> None:
        self._transport = httpx.ASGITransport(app=create_app(jobs, token))

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        pass

    def _call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        async def go() -> httpx.Response:
            async with httpx.AsyncClient(transport=self._transport, base_url="http://t") as c:
                return await c.request(method, url, **kwargs)

        return asyncio.run(go())

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self._call("GET", url, **kwargs)

    def post(self, url: str, json: Any, **kwargs: Any) -> httpx.Response:
        return self._call("POST", url, json=json, **kwargs)


def test_http_export_reports_status_and_manifest(
    kafka_settings: KafkaSettings, topics: TopicSettings, pg_schema: PgSchema, tmp_path: Path
) -> None:
    produce(kafka_settings, topics.events, events(500))
    config = ExportConfig(output_dir=tmp_path, source="log")  # no sink ran: the log as it is

    def runner(request: ExportRequest, progress: Progress) -> Manifest:
        conf = kafka_settings.librdkafka()
        return export(request, config, conf, topics, pg_schema.conninfo, progress=progress)

    jobs = Jobs(runner)
    with Client(jobs) as client:
        bad = client.post("/exports", json={"name": "../etc", "formats": ["csv"]})
        assert bad.status_code == 422
        started = client.post("/exports", json={"name": "api", "formats": ["jsonl"]})
        assert started.status_code == 202
        job_id = started.json()["id"]
        assert started.headers["location"] == f"/exports/{job_id}"
        jobs.wait(job_id, timeout=60)
        status = client.get(f"/exports/{job_id}").json()
        keyless = client.post("/exports", json={"name": "p", "pseudonymise": True}).json()
        jobs.wait(keyless["id"], timeout=60)
        refused = client.get(f"/exports/{keyless['id']}").json()
        assert [j["id"] for j in client.get("/exports").json()] == [job_id, keyless["id"]]
        assert client.get("/exports/nope").status_code == 404

    assert status["status"] == "succeeded", status["error"]
    assert status["progress"] == {"done": 500, "total": 500}
    assert status["manifest"]["exported"] == 500
    assert refused["status"] == "failed" and refused["error"].startswith("PseudonymKeyMissing")
    assert not (tmp_path / "p").exists()
    on_disk = Manifest.model_validate_json((tmp_path / "api" / "manifest.json").read_bytes())
    assert status["manifest"] == on_disk.model_dump(mode="json")


def test_http_reports_a_failed_export(tmp_path: Path) -> None:
    def runner(request: ExportRequest, progress: Progress) -> Manifest:
        raise ValueError("broker unreachable")

    jobs = Jobs(runner)
    with Client(jobs) as client:
        job_id = client.post("/exports", json={"name": "x"}).json()["id"]
        jobs.wait(job_id, timeout=10)
        status = client.get(f"/exports/{job_id}").json()
    assert status["status"] == "failed"
    assert status["error"] == "ValueError: broker unreachable"


def test_with_a_token_every_export_route_answers_401_without_it(tmp_path: Path) -> None:
    def runner(request: ExportRequest, progress: Progress) -> Manifest:
        raise ValueError("no broker in this test")

    jobs = Jobs(runner)
    good = {"Authorization": "Bearer export-token"}
    with Client(jobs, SecretStr("export-token")) as client:
        refused = [
            client.post("/exports", json={"name": "x"}),
            client.post("/exports", json={"name": "x"}, headers={"Authorization": "Bearer no"}),
            client.get("/exports"),
        ]
        assert jobs.all() == []  # nothing was started by the refused POSTs
        job_id = client.post("/exports", json={"name": "x"}, headers=good).json()["id"]
        jobs.wait(job_id, timeout=10)
        refused.append(client.get(f"/exports/{job_id}"))
        status = client.get(f"/exports/{job_id}", headers=good)
        listing = client.get("/exports", headers=good)
    assert [r.status_code for r in refused] == [401, 401, 401, 401]
    assert all(r.headers["www-authenticate"].startswith("Bearer") for r in refused)
    # a wrong token is told apart from a missing one (RFC 6750 invalid_token)
    assert 'error="invalid_token"' in refused[1].headers["www-authenticate"]
    assert "not valid" in refused[1].json()["error"]
    assert "required" in refused[0].json()["error"]
    assert status.status_code == 200 and status.json()["status"] == "failed"
    assert [j["id"] for j in listing.json()] == [job_id]


def test_http_refuses_a_second_export_of_a_running_name(tmp_path: Path) -> None:
    release = []

    def runner(request: ExportRequest, progress: Progress) -> Manifest:
        while not release:
            time.sleep(0.01)
        raise RuntimeError("stopped")

    jobs = Jobs(runner)
    with Client(jobs) as client:
        first = client.post("/exports", json={"name": "same"}).json()["id"]
        second = client.post("/exports", json={"name": "same"})
        release.append(True)
        jobs.wait(first, timeout=10)
    assert second.status_code == 409 and second.json()["job"] == first


def test_replay_to_raw_is_idempotent_and_honours_erasure(
    kafka_settings: KafkaSettings, topics: TopicSettings, pg_schema: PgSchema, tmp_path: Path
) -> None:
    produced = events(2_000, users=20)
    produce(kafka_settings, topics.events, produced)
    produce_raw(kafka_settings, topics.events, [(b"k", b"garbage", [])])
    with psycopg.connect(pg_schema.conninfo, autocommit=True) as conn:
        conn.execute("INSERT INTO erased_users (user_id) VALUES ('user-5')")
    config = ExportConfig(output_dir=tmp_path, source="log")  # no sink ran: the log as it is

    with reader(kafka_settings, topics, config) as log_reader:
        first = replay_to_raw(log_reader, LogRange(), pg_schema.conninfo, SinkConfig())
        second = replay_to_raw(log_reader, LogRange(), pg_schema.conninfo, SinkConfig())

    assert (first.read, first.inserted, first.erased, first.rejected) == (2_001, 1_900, 100, 1)
    assert (second.inserted, second.duplicates, second.erased) == (0, 1_900, 100)
    with psycopg.connect(pg_schema.conninfo) as conn:
        stored = conn.execute("SELECT event_id::text FROM analytics_events").fetchall()
    want = {str(e.event_id) for e in produced if e.user_id != "user-5"}
    assert {row[0] for row in stored} == want and len(stored) == len(want)
