"""The secure profile's credentials file: a dev dir made before a principal or a Postgres role
was added gets its password on the next ``dev up`` instead of a KeyError."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from brainstream.dev import secure


def test_missing_principals_and_roles_are_added_and_existing_passwords_kept(
    tmp_path: Path,
) -> None:
    first = secure.credentials(tmp_path)
    path = tmp_path / "secure" / "credentials.json"
    doc = json.loads(path.read_text())
    del doc["postgres"]["export"], doc["kafka"]["worker"]
    path.write_text(json.dumps(doc))
    again = secure.credentials(tmp_path)
    assert set(again.postgres) == set(secure.PG_ROLES)
    assert set(again.kafka) == {secure.ADMIN, *secure.PRINCIPALS}
    assert again.postgres["sink"] == first.postgres["sink"]  # unchanged where present
    assert again.kafka["worker"] != first.kafka["worker"]  # a new one where missing
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert secure.credentials(tmp_path) == again
