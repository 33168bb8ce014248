"""One settings module, one unit convention, and renamed variables that keep working."""

from __future__ import annotations

import warnings
from typing import Any

import pytest

from brainstream import settings
from producers.config import TrackerConfig
from streams.config import WorkerConfig
from tests.test_docs_settings import settings_models

LIBRDKAFKA_MS = {
    "delivery_timeout_ms",  # message.timeout.ms (delivery.timeout.ms)
    "linger_ms",  # linger.ms
    "max_poll_interval_ms",  # max.poll.interval.ms
    "session_timeout_ms",  # session.timeout.ms
    "segment_ms",  # the topic's segment.ms
}
"""Fields named after a librdkafka (or Kafka topic) property counted in milliseconds."""


def _deprecations(build: Any) -> tuple[Any, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = build()
    assert {w.category for w in caught} <= {DeprecationWarning}
    return value, [str(w.message) for w in caught]


def test_durations_are_seconds_and_ms_only_names_librdkafka() -> None:
    wrong = []
    for cls in settings_models():
        for name in cls.model_fields:
            if name.endswith("_s") or (name.endswith("_ms") and name not in LIBRDKAFKA_MS):
                wrong.append(f"{cls.__module__}.{cls.__name__}.{name}")
            if name.endswith(("_timeout", "_interval")):
                wrong.append(f"{cls.__module__}.{cls.__name__}.{name} (no unit)")
    assert not wrong, wrong


def test_the_settings_models_live_in_one_module() -> None:
    models = {c.__module__ for c in settings_models() if c.__module__.startswith("brainstream")}
    assert models == {"brainstream.settings"}
    for name in settings.__all__:
        assert hasattr(settings, name)


@pytest.mark.parametrize(
    ("model", "old", "value", "field", "expected"),
    [
        ("WorkerSettings", "BRAINSTREAM_WORKER_TAKE_WITHIN_S", "0.5", "take_within_seconds", 0.5),
        (
            "WorkerSettings",
            "BRAINSTREAM_WORKER_SESSION_TIMEOUT_S",
            "7",
            "session_timeout_seconds",
            7.0,
        ),
        (
            "SinkSettings",
            "BRAINSTREAM_SINK_SWITCH_INTERVAL_S",
            "0.002",
            "switch_interval_seconds",
            0.002,
        ),
        (
            "RetentionSettings",
            "BRAINSTREAM_RETENTION_LOCK_TIMEOUT_MS",
            "2500",
            "lock_timeout_seconds",
            2.5,
        ),
        ("SdkSettings", "BRAINSTREAM_SDK_CLOSE_TIMEOUT", "1.5", "close_timeout_seconds", 1.5),
    ],
)
def test_an_old_variable_is_read_with_a_deprecation_warning(
    monkeypatch: pytest.MonkeyPatch, model: str, old: str, value: str, field: str, expected: float
) -> None:
    monkeypatch.setenv(old, value)
    built, messages = _deprecations(getattr(settings, model))
    assert getattr(built, field) == pytest.approx(expected)
    assert any(old in m for m in messages), messages


def test_the_new_variable_wins_over_the_old_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRAINSTREAM_WORKER_TAKE_WITHIN_S", "0.5")
    monkeypatch.setenv("BRAINSTREAM_WORKER_TAKE_WITHIN_SECONDS", "0.75")
    built, messages = _deprecations(settings.WorkerSettings)
    assert built.take_within_seconds == 0.75 and len(messages) == 1


def test_the_new_names_raise_no_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRAINSTREAM_WORKER_TAKE_WITHIN_SECONDS", "0.75")
    _built, messages = _deprecations(settings.WorkerSettings)
    assert messages == []


def test_old_keywords_of_the_plain_models_still_work() -> None:
    config, messages = _deprecations(lambda: TrackerConfig(close_timeout=2.0))
    assert config.close_timeout_seconds == 2.0 and "close_timeout_seconds" in messages[0]
    worker, _ = _deprecations(lambda: WorkerConfig(retry_max_s=3.0))
    assert worker.retry_max_seconds == 3.0
