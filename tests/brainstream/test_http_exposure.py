"""A server that returns per-user data refuses to listen beyond loopback without a token, with
a one-line usage error and before it connects to anything."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from brainstream.cli import app

REFUSED = [
    (["dashboard", "--host", "0.0.0.0"], {}),
    (["export", "serve", "--host", "0.0.0.0"], {}),
    (["worker"], {"BRAINSTREAM_WORKER_WEB_HOST": "0.0.0.0"}),
    (["dashboard"], {"BRAINSTREAM_DASHBOARD_HOST": "::"}),
    (["export", "serve"], {"BRAINSTREAM_EXPORT_HTTP_HOST": "10.1.2.3"}),
]


@pytest.mark.parametrize(("args", "env"), REFUSED)
def test_refused_beyond_loopback_without_a_token(
    args: list[str], env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BRAINSTREAM_API_TOKEN", raising=False)
    # Nothing answers here: a server that got past the check would fail differently.
    monkeypatch.setenv("BRAINSTREAM_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("BRAINSTREAM_POSTGRES_DSN", "postgresql://nobody@127.0.0.1:1/none")
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 2, result.output
    assert "refusing to listen" in result.output
    assert "BRAINSTREAM_API_TOKEN" in result.output
