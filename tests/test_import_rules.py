"""The import rules of the layout (docs/design.md, "Layout"): which of our packages may import
which. ``producers``, ``streams`` and ``sinks`` never import each other; they share only the
contracts (``schemas``) and the log layer (``eventlog``).

Every ``import`` of every module is read with :mod:`ast` (also those inside functions and under
``TYPE_CHECKING``: a deferred import is still a dependency), relative imports resolved against
the module's own package.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

RULES: dict[str, frozenset[str]] = {
    "schemas": frozenset(),
    "eventlog": frozenset({"schemas"}),
    "producers": frozenset({"schemas", "eventlog"}),
    "streams": frozenset({"schemas", "eventlog"}),
    "sinks": frozenset({"schemas", "eventlog"}),
    "brainstream": frozenset({"schemas", "eventlog", "producers", "streams", "sinks"}),
}
"""Package -> the other packages of ours it may import."""


@dataclass(frozen=True, slots=True)
class Violation:
    module: str
    line: int
    imported: str

    def __str__(self) -> str:
        return f"{self.module}:{self.line} imports {self.imported}"


def imported_modules(source: str, module: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``source`` (the text of ``module``)."""
    package = module.split(".")
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the module's package upwards
                base = package[: len(package) - node.level]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            found.append((node.lineno, name))
    return found


def violations(
    modules: dict[str, str], rules: dict[str, frozenset[str]] = RULES
) -> list[Violation]:
    """The imports of ``modules`` (name -> source) that break ``rules``."""
    out = []
    for module, source in sorted(modules.items()):
        own = module.split(".")[0]
        for line, name in imported_modules(source, module):
            target = name.split(".")[0]
            if target in rules and target != own and target not in rules[own]:
                out.append(Violation(module, line, name))
    return out


def _modules_of_the_repo() -> dict[str, str]:
    modules = {}
    for package in RULES:
        for path in sorted((REPO / package).rglob("*.py")):
            # ``pkg.__init__`` keeps its last part, so relative imports resolve from ``pkg``
            parts = path.relative_to(REPO).with_suffix("").parts
            modules[".".join(parts)] = path.read_text()
    return modules


def test_every_package_imports_only_what_its_rule_allows() -> None:
    modules = _modules_of_the_repo()
    assert {m.split(".")[0] for m in modules} == set(RULES)  # every package was read
    assert not violations(modules), "\n".join(map(str, violations(modules)))


@pytest.mark.parametrize(
    ("module", "source", "imported"),
    [
        ("sinks.consumer", "from streams.writer import upsert\n", "streams.writer"),
        ("streams.app", "def f():\n    import sinks.forward\n", "sinks.forward"),
        ("producers.tracker", "from sinks import records\n", "sinks"),
        (
            "eventlog.reader",
            "from sinks.export.config import ExportConfig\n",
            "sinks.export.config",
        ),
        ("eventlog.fence", "if TYPE_CHECKING:\n    from streams import writer\n", "streams"),
        ("schemas.codec", "import eventlog.offsets\n", "eventlog.offsets"),
        ("sinks.export.run", "from ...streams import fold\n", "streams"),
        ("sinks.export.__init__", "from ...producers import Tracker\n", "producers"),
    ],
)
def test_a_forbidden_import_is_found(module: str, source: str, imported: str) -> None:
    assert violations({module: source}) == [Violation(module, source.count("\n"), imported)]


def test_allowed_imports_pass() -> None:
    allowed = {
        "sinks.consumer": "from eventlog.offsets import is_fatal\nfrom schemas import Event\n",
        "sinks.export.run": "from . import rows\nfrom ..writer import prepare\n",
        "sinks.export.__init__": "from .run import run_export\nfrom ..records import Row\n",
        "brainstream.cli": "from streams.writer import upsert\nfrom sinks import replay\n",
        "eventlog.reader": "import confluent_kafka\nfrom schemas.accepted import AcceptedBatch\n",
    }
    assert violations(allowed) == []
