"""With the broker and the database unreachable the page still loads, the data endpoints answer
503 with a reason, and the health endpoints say what is down (no services needed)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from brainstream.dashboard import DashboardConfig, create_app
from brainstream.probe import HealthMonitor, Probe
from schemas.config import TopicSettings
from tests.brainstream.dashboard.pipeline import serving

NOWHERE_PG = "postgresql://nobody:nothing@127.0.0.1:1/none"


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    probe = Probe({"bootstrap.servers": "127.0.0.1:1"}, TopicSettings(), NOWHERE_PG, ("g",), 1.0)
    app = create_app(
        DashboardConfig(conninfo=NOWHERE_PG, monitor=HealthMonitor(probe), db_timeout=1.0)
    )
    with serving(app) as url, httpx.Client(base_url=url, timeout=30) as c:
        yield c


def test_outage_is_reported_not_raised(client: httpx.Client) -> None:
    assert client.get("/").status_code == 200
    assert client.get("/healthz").json() == {"ok": True}
    top = client.get("/api/top", params={"window": "1h"})
    assert top.status_code == 503
    assert top.json() == {"error": "database unavailable (PoolTimeout)"}
    health = client.get("/api/health").json()
    assert health["ok"] is False
    assert health["errors"]["kafka"].startswith("unreachable (")  # _TRANSPORT or _TIMED_OUT
    assert health["errors"]["postgres"] == "unreachable (OperationalError)"
    metrics = client.get("/metrics").text
    assert 'brainstream_component_up{component="kafka"} 0.0' in metrics
    assert "brainstream_pipeline_healthy 0.0" in metrics
    assert 'brainstream_dashboard_requests_total{route="top",status="503"} 1.0' in metrics
