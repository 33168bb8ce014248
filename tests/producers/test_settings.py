"""``Tracker.from_env()`` reads every ``BRAINSTREAM_SDK_*`` setting, and a spool directory that
cannot be created is a start-up error naming the setting (the container's ``nobody`` has no
home). No broker needed: the bootstrap address is a closed port."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from producers import SpoolUnavailable, Tracker, TrackerConfig
from producers.config import destination_spool_dir
from producers.settings import SdkSettings
from producers.spool import Spool
from schemas.config import KafkaSettings
from tests.fixtures.services import REPO

NOT_DEFAULT: dict[str, Any] = {
    "source": "from-env",
    "strict": True,
    "spool_max_bytes": 1_000_000,
    "delivery_timeout_ms": 12_345,
    "linger_ms": 7,
    "batch_size": 54_321,
    "compression": "zstd",
    "queue_max_messages": 4_321,
    "close_timeout_seconds": 1.5,
    "max_attempts": 3,
    "resend_interval_seconds": 0.25,
    "log_interval_seconds": 3.0,
    "prometheus": False,
    "send": False,
    "sample_rates": {"page_view": 0.5},
    "librdkafka": {"socket.keepalive.enable": True},
    "schema_versions": {"page_view": 1},
}


def _env_value(value: Any) -> str:
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def test_from_env_reads_every_sdk_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fields = set(TrackerConfig.model_fields)
    assert set(NOT_DEFAULT) | {"spool_dir"} == fields, "a new TrackerConfig field: add it here"
    defaults = TrackerConfig()
    for name, value in NOT_DEFAULT.items():
        assert getattr(defaults, name) != value
        monkeypatch.setenv(f"BRAINSTREAM_SDK_{name.upper()}", _env_value(value))
    monkeypatch.setenv("BRAINSTREAM_SDK_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.setenv("BRAINSTREAM_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9")
    monkeypatch.setenv("BRAINSTREAM_TOPIC_EVENTS", "from-env.events")
    with Tracker.from_env() as tracker:
        for name, value in NOT_DEFAULT.items():
            assert getattr(tracker.config, name) == value, name
        assert tracker.config.spool_dir == tmp_path / "spool"
        assert tracker.topic == "from-env.events"
        assert tracker._conf["bootstrap.servers"] == "127.0.0.1:9"
        assert tracker._conf["linger.ms"] == 7
    with Tracker.from_env(source="override", strict=False) as tracker:  # arguments win
        assert tracker.config.source == "override" and not tracker.config.strict
        assert tracker.config.linger_ms == 7


def test_from_env_reads_a_dotenv_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("BRAINSTREAM_"):
            monkeypatch.delenv(name)
    (tmp_path / ".env").write_text(
        f"BRAINSTREAM_SDK_SPOOL_DIR={tmp_path / 'dotenv-spool'}\nBRAINSTREAM_SDK_LINGER_MS=9\n"
    )
    assert SdkSettings().linger_ms == 9
    assert SdkSettings().spool_dir == tmp_path / "dotenv-spool"


def test_an_unusable_spool_dir_is_a_start_up_error_naming_the_setting(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")  # a directory under a regular file cannot be made, even by root
    with pytest.raises(SpoolUnavailable) as info:
        Tracker(spool_dir=blocker / "spool", source="unit", prometheus=False)
    assert "BRAINSTREAM_SDK_SPOOL_DIR" in str(info.value)
    assert str(blocker / "spool") in str(info.value)


def test_the_image_user_has_no_home_so_the_default_spool_needs_the_setting() -> None:
    """The image's user environment (``nobody``: HOME=/nonexistent, no XDG_CACHE_HOME): the
    default points into the missing home, which is why the image sets the variable."""
    env = {"PATH": os.environ["PATH"], "HOME": "/nonexistent"}
    code = (
        "from producers.config import destination_spool_dir as d; "
        "from producers.settings import SdkSettings; "
        "print(SdkSettings().spool_dir or d('127.0.0.1:9092', 'brainstream.events'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out.startswith("/nonexistent/.cache/brainstream/spool/brainstream.events-"), out
    env["XDG_CACHE_HOME"] = "/tmp/cache"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out.startswith("/tmp/cache/brainstream/spool/brainstream.events-"), out
    env["BRAINSTREAM_SDK_SPOOL_DIR"] = "/var/lib/brainstream/spool"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "/var/lib/brainstream/spool"


def _dockerfile() -> list[list[str]]:
    lines = (REPO / "Dockerfile").read_text().splitlines()
    return [line.split() for line in lines if line.strip() and not line.startswith("#")]


def test_the_image_gives_nobody_a_writable_spool_volume() -> None:
    steps = _dockerfile()
    env = {s[1].split("=", 1)[0]: s[1].split("=", 1)[1] for s in steps if s[0] == "ENV"}
    spool = env["BRAINSTREAM_SDK_SPOOL_DIR"]
    user_at = next(i for i, s in enumerate(steps) if s[0] == "USER")
    assert steps[user_at][1] == "nobody"
    runs = [" ".join(s[1:]) for s in steps[:user_at] if s[0] == "RUN"]
    assert any(f"mkdir -p {spool}" in r and "chown -R nobody" in r for r in runs), runs
    assert ["VOLUME", spool] in steps
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    mounts = compose["services"]["producer"]["volumes"]
    assert any(m.split(":")[1] == spool and m.split(":")[0] in compose["volumes"] for m in mounts)


def test_dockerignore_keeps_local_state_out_of_the_image() -> None:
    ignored = {
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", ".brainstream", ".env"} <= ignored


def _orphan(directory: Path, n: int) -> None:
    """``n`` records spooled by a process that is gone (its lock released)."""
    gone = Spool(directory, 1 << 20)
    for i in range(n):
        gone.append(b"u", b"%08d" % i, [])
    gone.close()


def _recovered(kafka: KafkaSettings, topic: str, wait: float = 2.0) -> int:
    """What a tracker adopts at start (its first maintenance tick runs within ~50 ms)."""
    tracker = Tracker(kafka, topic=topic, source="unit", prometheus=False)
    try:
        deadline = time.monotonic() + wait
        while not tracker.stats().recovered and time.monotonic() < deadline:
            time.sleep(0.05)
        return tracker.stats().recovered
    finally:
        tracker.close(0.5)


def test_the_default_spool_is_one_per_destination(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Orphans are re-sent by whoever adopts them, to its own topic and cluster: under the
    default spool a process adopts only what was spooled for its own destination (two services
    of one OS user publishing to staging and production must not swap events)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    here, there = KafkaSettings(bootstrap_servers="127.0.0.1:9"), "127.0.0.1:10"
    spool = destination_spool_dir(here.bootstrap_servers, "app.events")
    assert spool == destination_spool_dir(" 127.0.0.1:9 ", "app.events")
    assert destination_spool_dir("B:1,a:2", "t") == destination_spool_dir("a:2, b:1", "t")
    assert spool != destination_spool_dir(there, "app.events")
    assert spool != destination_spool_dir(here.bootstrap_servers, "other.events")
    _orphan(spool, 7)
    assert _recovered(KafkaSettings(bootstrap_servers=there), "app.events") == 0
    assert _recovered(here, "other.events") == 0
    assert _recovered(here, "app.events", wait=10) == 7


def test_segments_of_the_unkeyed_default_spool_are_named_not_adopted(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    _orphan(tmp_path / "brainstream" / "spool", 3)
    with caplog.at_level("WARNING", logger="brainstream.producers"):
        assert _recovered(KafkaSettings(bootstrap_servers="127.0.0.1:9"), "app.events") == 0
    assert "1 spooled segment(s) in" in caplog.text and "have no destination" in caplog.text
