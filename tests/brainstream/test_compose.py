"""docker-compose.yml must agree with the settings model and the CLI (no Docker engine here)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import typer
import yaml
from pydantic import SecretStr
from pydantic_settings import BaseSettings

import brainstream
import schemas.config
from brainstream.cli import app
from brainstream.settings import DashboardSettings
from schemas.access import is_loopback, require_token_beyond_loopback
from schemas.http import serve
from streams.config import WorkerConfig

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
BRAINSTREAM_SERVICES = {"init", "sink", "worker", "dashboard", "producer"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return doc


def known_env_names() -> set[str]:
    """Every BRAINSTREAM_* variable some settings model reads."""
    modules = [schemas.config, importlib.import_module("brainstream.settings")]
    for info in pkgutil.iter_modules(brainstream.__path__):
        if info.name.startswith("settings_"):
            modules.append(importlib.import_module(f"brainstream.{info.name}"))
    names = set()
    for module in modules:
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, BaseSettings) and obj is not BaseSettings:
                prefix = obj.model_config.get("env_prefix", "")
                for field_name, field in obj.model_fields.items():
                    if isinstance(field.annotation, type) and issubclass(
                        field.annotation, BaseSettings
                    ):
                        continue
                    names.add(field.alias or f"{prefix}{field_name}".upper())
    return names


def test_expected_services_exist(compose: dict[str, Any]) -> None:
    assert {"kafka", "postgres"} | BRAINSTREAM_SERVICES <= set(compose["services"])


def test_every_brainstream_variable_is_a_real_setting(compose: dict[str, Any]) -> None:
    known = known_env_names()
    for name in BRAINSTREAM_SERVICES:
        env = compose["services"][name]["environment"]
        unknown = {k for k in env if k.startswith("BRAINSTREAM_")} - known
        assert not unknown, f"{name}: {unknown} are not read by any settings model"


def test_addresses_point_at_the_compose_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    env = services["sink"]["environment"]
    host, port = env["BRAINSTREAM_KAFKA_BOOTSTRAP_SERVERS"].split(":")
    kafka_env = services["kafka"]["environment"]
    assert f"PLAINTEXT://{host}:{port}" in kafka_env["KAFKA_ADVERTISED_LISTENERS"]
    dsn = urlsplit(env["BRAINSTREAM_POSTGRES_DSN"])
    assert dsn.hostname == "postgres" and dsn.port == 5432
    pg_env = services["postgres"]["environment"]
    assert (dsn.username, dsn.password, dsn.path.lstrip("/")) == (
        pg_env["POSTGRES_USER"],
        pg_env["POSTGRES_PASSWORD"],
        pg_env["POSTGRES_DB"],
    )
    assert "127.0.0.1:5432:5432" in services["postgres"]["ports"]


def _parse(words: list[str]) -> None:
    """Parse a command line down to its leaf command, validating every option (no invoke)."""
    command: Any = typer.main.get_command(app)
    ctx = command.make_context("brainstream", words)
    while hasattr(command, "resolve_command"):  # a group (typer ships its own click)
        args = [*ctx._protected_args, *ctx.args]
        if not args:  # a group run without a sub-command (e.g. `brainstream sink`)
            return
        name, sub, rest = command.resolve_command(ctx, args)
        assert sub is not None and name is not None
        command, ctx = sub, sub.make_context(name, rest, parent=ctx)


def test_service_commands_are_real_cli_commands(compose: dict[str, Any]) -> None:
    for name in BRAINSTREAM_SERVICES:
        command = compose["services"][name]["command"]
        lines = command[-1].split("&&") if command[0] == "sh" else [" ".join(command)]
        for line in lines:
            words = line.split()
            assert words[0] == "brainstream"
            try:
                _parse(words[1:])
            except Exception as exc:  # typer's click raises its own UsageError/BadParameter
                pytest.fail(f"{name}: `{line.strip()}` is not a valid command line: {exc}")


def _listener(service: str, env: dict[str, str]) -> tuple[str, int]:
    """Where the service's HTTP server listens inside its container, from its settings."""
    if service == "sink":
        default = inspect.signature(serve).parameters["host"].default
        host = env.get("BRAINSTREAM_SINK_METRICS_HOST", default)
        return host, int(env["BRAINSTREAM_SINK_METRICS_PORT"])
    if service == "worker":
        worker = WorkerConfig()
        return env.get("BRAINSTREAM_WORKER_WEB_HOST", worker.web_host), worker.web_port
    dashboard = DashboardSettings.model_construct()
    return env.get("BRAINSTREAM_DASHBOARD_HOST", dashboard.host), dashboard.port


def test_published_ports_and_health_checks_reach_the_servers(compose: dict[str, Any]) -> None:
    """A published port reaches a server only if it listens on every interface of its
    container; a health check must ask the port the server listens on, or be a CLI command."""
    for name in ("sink", "worker", "dashboard"):
        service = compose["services"][name]
        host, port = _listener(name, service["environment"])
        assert host == "0.0.0.0", f"{name} listens on {host} only"
        assert [int(p.split(":")[-1]) for p in service["ports"]] == [port], name
        check = service["healthcheck"]["test"]
        assert check[0] == "CMD", name
        if check[1] == "brainstream":
            _parse(check[2:])
        else:
            assert check[1:3] == ["python", "-c"], name
            assert f"http://127.0.0.1:{port}/health" in check[3], name


def test_every_published_port_is_on_the_hosts_loopback(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for published in service.get("ports", []):
            assert published.startswith("127.0.0.1:"), f"{name} publishes {published} widely"


def test_servers_of_per_user_data_beyond_loopback_have_a_token(compose: dict[str, Any]) -> None:
    """The worker and the dashboard listen on 0.0.0.0 in their containers: each must get the
    token, or it refuses to start (schemas.access)."""
    for name in ("worker", "dashboard"):
        service = compose["services"][name]
        host, _port = _listener(name, service["environment"])
        assert not is_loopback(host)
        token = service["environment"].get("BRAINSTREAM_API_TOKEN")
        assert token, f"{name} has no BRAINSTREAM_API_TOKEN"
        require_token_beyond_loopback(name, host, SecretStr(token))
