"""Every runtime import is provided by the dependencies of the install that runs it.

``pyproject.toml`` splits the dependencies: the base install (the SDK and the contract) and one
extra per process. A module may import only what its install brings: ``schemas``,
``producers`` and ``eventlog`` the base (``eventlog``'s Postgres and backoff modules
``[cli]``), ``sinks`` ``[sink]``, ``sinks.export`` ``[export]``, ``streams`` ``[worker]``,
``brainstream.dashboard`` ``[dashboard]``; the CLI's module-level imports
``[cli]`` (every extra has it: ``brainstream --help`` runs with any of them), its commands'
imports ``[all]``. Found by reading the source (every ``import``, also inside functions) and
the installed distributions' metadata; ``tests/test_install.py`` runs the base install.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import sys
import tomllib
from functools import cache
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
OURS = {"schemas", "eventlog", "producers", "sinks", "streams", "brainstream", "tests"}


def _requirements(extras: tuple[str, ...]) -> list[Requirement]:
    reqs = [Requirement(r) for r in PYPROJECT["dependencies"]]
    for extra in extras:
        for text in PYPROJECT["optional-dependencies"][extra]:
            req = Requirement(text)
            if canonicalize_name(req.name) == "brainstream":
                reqs += _requirements(tuple(sorted(req.extras)))
            else:
                reqs.append(req)
    return reqs


@cache
def _closure(extras: tuple[str, ...]) -> frozenset[str]:
    """Canonical names of every distribution the install with ``extras`` brings."""
    seen: set[str] = set()
    todo = [(r.name, frozenset(r.extras)) for r in _requirements(extras)]
    while todo:
        name, wanted = todo.pop()
        key = canonicalize_name(name)
        if key in seen and not wanted:
            continue
        seen.add(key)
        for text in md.requires(name) or []:
            req = Requirement(text)
            env = [{"extra": e} for e in wanted] or [{"extra": ""}]
            if req.marker is None or any(req.marker.evaluate(e) for e in env):
                todo.append((req.name, frozenset(req.extras)))
    return frozenset(seen)


def _imports(path: Path, module_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names - OURS - set(sys.stdlib_module_names) - {"__future__"}


def _extras_of(path: Path) -> tuple[str, ...]:
    rel = path.relative_to(REPO).as_posix()
    for prefix, extras in (
        ("schemas/compat.py", ("cli",)),  # the gate of `brainstream schemas check`, not the SDK
        ("schemas/", ()),
        # the log layer's Postgres side and retry delays serve the sink and the worker
        ("eventlog/db.py", ("cli",)),
        ("eventlog/fence.py", ("cli",)),
        ("eventlog/backoff.py", ("cli",)),
        ("eventlog/", ()),
        ("producers/", ()),
        ("sinks/export/", ("export",)),
        ("sinks/", ("sink",)),
        ("streams/", ("worker",)),
        ("brainstream/dashboard/", ("dashboard",)),
    ):
        if rel.startswith(prefix):
            return extras
    return ("all",)


def test_every_runtime_import_is_a_dependency_of_its_install() -> None:
    dists = md.packages_distributions()
    missing: list[str] = []
    checks: list[tuple[Path, bool, tuple[str, ...]]] = []
    for package in ("schemas", "eventlog", "producers", "sinks", "streams", "brainstream"):
        for path in sorted((REPO / package).rglob("*.py")):
            checks.append((path, False, _extras_of(path)))
            if path.is_relative_to(REPO / "brainstream" / "cli"):
                checks.append((path, True, ("cli",)))
    for path, module_level, extras in checks:
        allowed = _closure(extras)
        for name in sorted(_imports(path, module_level)):
            provided = {canonicalize_name(d) for d in dists.get(name, [name])}
            if not provided & allowed:
                where = "module level" if module_level else "anywhere"
                install = f"[{','.join(extras)}]" if extras else "the base install"
                missing.append(
                    f"{path.relative_to(REPO)} imports {name} ({where}): not in {install}"
                )
    assert not missing, "\n".join(missing)


def test_the_base_install_is_the_sdk_and_the_contract() -> None:
    base = {canonicalize_name(Requirement(r).name) for r in PYPROJECT["dependencies"]}
    assert base == {
        "confluent-kafka",
        "pydantic",
        "pydantic-settings",
        "orjson",
        "uuid-utils",
        "prometheus-client",
    }
    for heavy in ("pyarrow", "faust-streaming", "starlette", "psycopg"):
        assert heavy not in _closure(()), heavy
