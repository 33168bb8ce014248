"""``erase-user``'s refusals and failures, as one line and without a broker or a database:
a user id the contract refuses is never erased, and an erasure Kafka did not acknowledge says
the database part is done and the command can be re-run."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from brainstream.cli import app
from brainstream.cli.errors import one_line
from sinks.erasure import ErasureNotPublished, ErasureReport, publish_erasure

CLOSED = {
    "BRAINSTREAM_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",
    "BRAINSTREAM_POSTGRES_DSN": "postgresql://u:p@127.0.0.1:9/db",
}


@pytest.mark.parametrize("user_id", ["alice@example.com", "a b", "x" * 129, ""])
def test_a_user_id_the_contract_refuses_is_a_usage_error(user_id: str) -> None:
    done = CliRunner().invoke(app, ["erase-user", user_id], env=CLOSED)
    assert done.exit_code == 2, done.output
    assert "not a user id the event contract accepts" in done.output
    assert "nothing erased" in done.output


def test_an_unacknowledged_erasure_says_the_database_part_is_done() -> None:
    report = ErasureReport("u-1", newly_erased=True, rows_deleted=3, erased_at=datetime.now(UTC))
    conf = {"bootstrap.servers": "127.0.0.1:9"}
    with pytest.raises(ErasureNotPublished) as info:
        publish_erasure(conf, "brainstream.erasures", report, timeout=1.0)
    line = one_line(info.value)
    assert line is not None and "\n" not in line
    assert "erased in Postgres" in line and "re-run erase-user" in line
