"""The base install (``pip install brainstream``, no extras) in a fresh venv: the SDK imports,
``track()`` delivers to the real broker, and nothing heavy is loaded (issue 15).

The venv is built from this checkout with pip's cache (no ``-e``: the installed copy, not the
source tree, is imported; the script runs outside the repository).
"""

from __future__ import annotations

import json
import os
import subprocess
import venv
from pathlib import Path

import pytest

from schemas.config import KafkaSettings, TopicSettings
from tests.producers.topic_reader import counts_by_id, read_topic

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.integration

SCRIPT = """
import json, os, sys
from pathlib import Path
import producers
from producers import Tracker
from schemas.config import KafkaSettings
tracker = Tracker(
    KafkaSettings(bootstrap_servers=os.environ["BOOTSTRAP"]),
    topic=os.environ["TOPIC"],
    source="base-install",
    spool_dir=Path(os.environ["SPOOL"]),
)
event_id = tracker.track("page_view", "user-base", path="/light")
stats = tracker.close(20.0)
heavy = sorted(
    name for name in sys.modules
    if name.split(".")[0] in {"pyarrow", "faust", "starlette", "psycopg", "typer", "uvicorn"}
)
print(json.dumps({"id": event_id, "stats": stats.as_dict(), "heavy": heavy,
                  "from": producers.__file__}))
"""


def test_the_base_install_tracks_without_heavy_dependencies(
    kafka_settings: KafkaSettings, topics: TopicSettings, tmp_path: Path
) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    pip_env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "BRAINSTREAM_"))}
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(REPO)],
        env=pip_env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    freeze = subprocess.run(
        [str(python), "-m", "pip", "freeze"], capture_output=True, text=True, check=True
    ).stdout.lower()
    for heavy in ("pyarrow", "faust-streaming", "starlette", "psycopg", "typer", "uvicorn"):
        assert f"{heavy}==" not in freeze, f"the base install pulled {heavy}"

    run_env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "BOOTSTRAP": kafka_settings.bootstrap_servers,
        "TOPIC": topics.events,
        "SPOOL": str(tmp_path / "spool"),
    }
    out = subprocess.run(
        [str(python), "-c", SCRIPT],
        cwd=tmp_path,  # not the checkout: the installed packages are imported
        env=run_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["from"].startswith(str(env_dir)), report["from"]
    assert report["heavy"] == []
    assert report["stats"]["delivered"] == 1, report["stats"]
    published = read_topic(kafka_settings, topics.events, expect=1, timeout=30)
    assert counts_by_id(published) == {report["id"]: 1}
