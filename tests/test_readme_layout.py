"""The README's layout table and architecture diagram match the tree.

Every top-level directory of the repository (hidden ones aside) has a row in the layout table,
every path a row names exists, and every package path the diagram draws (``sinks/``,
``brainstream/replay_aggregates.py``) exists.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def layout_paths(readme: str) -> set[str]:
    """The backticked paths in the first cell of each row of the ``## Layout`` table."""
    section = readme.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    paths: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            paths |= set(re.findall(r"`([^`]+)`", line.split("|")[1]))
    return paths


def diagram_paths(readme: str) -> set[str]:
    """The repository paths drawn in the README's first code block (``pkg/``, ``pkg/mod.py``)."""
    diagram = readme.split("```", 2)[1]
    return set(re.findall(r"(?<![\w./])(?:[a-z_]+/)+(?:[a-z_]+\.py)?", diagram))


def tracked_top_level_dirs() -> set[str]:
    """Top-level directories holding a file git tracks: what a clone has, not what a run left
    behind (``artifacts/`` of the browser test, ``build/``, ``*.egg-info/``: all ignored)."""
    files = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    return {f"{f.split('/', 1)[0]}/" for f in files if "/" in f}


def test_every_top_level_directory_has_a_row_and_every_row_exists() -> None:
    listed = layout_paths(README)
    dirs = {d for d in tracked_top_level_dirs() if not d.startswith(".")}
    assert dirs <= listed, f"no layout row for {sorted(dirs - listed)}"
    missing = sorted(p for p in listed if not (REPO / p).exists())
    assert not missing, f"layout rows name paths that do not exist: {missing}"


def test_every_path_of_the_diagram_exists() -> None:
    drawn = diagram_paths(README)
    assert {"producers/", "sinks/", "streams/", "eventlog/", "schemas/"} <= drawn
    missing = sorted(p for p in drawn if not (REPO / p).exists())
    assert not missing, f"the diagram draws paths that do not exist: {missing}"


def test_a_stale_row_or_drawing_is_found() -> None:
    readme = README.replace("| `eventlog/` |", "| `kafkalog/` |").replace(
        "streams/reference.py", "streams/rebuild.py"
    )
    assert "kafkalog/" in layout_paths(readme)
    assert not (REPO / "kafkalog").exists()
    assert "streams/rebuild.py" in diagram_paths(readme)
    assert not (REPO / "streams/rebuild.py").exists()


TOP = ("schemas", "eventlog", "producers", "streams", "sinks", "brainstream", "tests", "benchmarks")


def cited_paths(text: str) -> set[str]:
    """Backticked repository paths (``sinks/replay.py``, ``tests/streams/``) in ``text``;
    placeholders (``benchmarks/results/NAME.json``) are not paths."""
    top = "|".join(TOP)
    found = re.findall(rf"`((?:{top})/[a-z0-9_./-]*)`", text)
    return {p for p in found if not p.endswith(".")}


def test_every_repository_path_the_docs_cite_exists() -> None:
    docs = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    missing = sorted(
        f"{doc.relative_to(REPO)}: {path}"
        for doc in docs
        for path in cited_paths(doc.read_text())
        if not (REPO / path).exists()
    )
    assert not missing, "\n".join(missing)
    assert "tests/streams/test_faults.py" in cited_paths("see `tests/streams/test_faults.py`")
