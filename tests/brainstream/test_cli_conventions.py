"""What an operator expects of any CLI: --version, one-line errors that name the setting (and
--debug for the traceback), a .env file read, --log-level and JSON logs. Unreachable servers
are closed ports (no broker or database needed)."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from brainstream import logs

CLOSED_PG = "postgresql://brainstream:secret-pw@127.0.0.1:9/brainstream"


def cli(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("BRAINSTREAM_")}
    return subprocess.run(
        [sys.executable, "-m", "brainstream.cli", *args],
        cwd=cwd,
        env={**base, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_version(tmp_path: Path) -> None:
    done = cli("--version", cwd=tmp_path)
    assert done.returncode == 0
    assert done.stdout.strip() == f"brainstream {version('brainstream')}"


def test_postgres_unreachable_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    done = cli("db", "migrate", cwd=tmp_path, BRAINSTREAM_POSTGRES_DSN=CLOSED_PG)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert (
        lines[0].startswith("error: Postgres unreachable")
        and "BRAINSTREAM_POSTGRES_DSN" in lines[0]
    )
    assert "secret-pw" not in done.stderr
    debug = cli("--debug", "db", "migrate", cwd=tmp_path, BRAINSTREAM_POSTGRES_DSN=CLOSED_PG)
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_kafka_unreachable_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    done = cli(
        "topics", "create", "--timeout", "2", cwd=tmp_path,
        BRAINSTREAM_KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9",
    )  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Kafka unreachable" in lines[0] and "BRAINSTREAM_KAFKA_BOOTSTRAP_SERVERS" in lines[0]


def test_an_invalid_setting_names_the_variable(tmp_path: Path) -> None:
    done = cli("db", "migrate", cwd=tmp_path, BRAINSTREAM_TOPIC_EVENTS_PARTITIONS="0")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: invalid setting: BRAINSTREAM_TOPIC_EVENTS_PARTITIONS: "
        "Input should be greater than or equal to 1"
    ]


def test_a_dotenv_file_in_the_working_directory_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "BRAINSTREAM_POSTGRES_DSN=postgresql://brainstream:x@127.0.0.1:7/brainstream\n"
    )
    done = cli("db", "migrate", cwd=tmp_path)
    assert done.returncode == 2 and "port 7 failed" in done.stderr, done.stderr


def test_json_logs_are_one_object_a_line(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        logs.configure("DEBUG", "json")
        logging.getLogger("brainstream.test").debug("hello %s", "world")
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("brainstream.test").exception("failed")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert lines[0]["message"] == "hello world" and lines[0]["level"] == "DEBUG"
    assert lines[0]["logger"] == "brainstream.test" and lines[0]["ts"].endswith("+00:00")
    assert "ValueError: boom" in lines[1]["exc"]


def test_log_options_are_checked(tmp_path: Path) -> None:
    done = cli("--log-level", "chatty", "schemas", "export", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 2 and "--log-level" in done.stderr
    done = cli(
        "--log-format",
        "json",
        "--log-level",
        "debug",
        "schemas",
        "export",
        str(tmp_path),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr


def test_logs_follow_stderr_after_a_redirect_ends(capsys: pytest.CaptureFixture[str]) -> None:
    """A process that swaps ``sys.stderr`` (an in-process CLI run, ``redirect_stderr``) and
    closes the stand-in must not leave the log handler writing to the closed stream: a
    background thread's later record (the SDK's poll thread) goes to the current stderr."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stand_in = io.StringIO()
    try:
        with contextlib.redirect_stderr(stand_in):
            logs.configure("INFO", "text")
            logging.getLogger("brainstream.test").info("during")
        stand_in.close()
        logging.getLogger("brainstream.test").warning("after")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    err = capsys.readouterr().err
    assert "Logging error" not in err, err
    assert "brainstream.test: after" in err, err
