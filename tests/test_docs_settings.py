"""The docs match the settings: every ``BRAINSTREAM_*`` variable the code reads is documented
in a table row of README.md or docs/*.md with its default, and every variable the docs name is
read somewhere. Collected from the settings models (every ``BaseSettings`` in the packages)
and the literal names the code reads (``os.environ``); a row may abbreviate names that share
its first name's prefix (``BRAINSTREAM_TOPIC_EVENTS`` / ``_DLQ``).
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("schemas", "producers", "sinks", "streams", "brainstream")
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
_TOKEN = re.compile(r"`(BRAINSTREAM_[A-Z0-9_]*|_?[A-Z][A-Z0-9_]+)`")
_LITERAL = re.compile(r"\"(BRAINSTREAM_[A-Z0-9_]*[A-Z0-9])\"")


def settings_models() -> list[type[BaseSettings]]:
    for package in PACKAGES:
        module = importlib.import_module(package)
        for info in pkgutil.walk_packages(module.__path__, f"{package}."):
            if not info.name.endswith("__main__"):
                importlib.import_module(info.name)
    found: list[type[BaseSettings]] = []
    todo: list[type[BaseSettings]] = [BaseSettings]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.__module__.split(".")[0] in PACKAGES:
            found.append(cls)
    return found


def read_variables() -> dict[str, tuple[str, Any]]:
    """Variable name -> (where it is read, its default or PydanticUndefined if unknown)."""
    names: dict[str, tuple[str, Any]] = {}
    for cls in settings_models():
        prefix = cls.model_config.get("env_prefix", "")
        for field_name, info in cls.model_fields.items():
            annotation = info.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                continue  # a nested group with its own prefix
            name = info.alias or f"{prefix}{field_name}".upper()
            default = info.get_default(call_default_factory=True)
            names[name] = (f"{cls.__module__}.{cls.__name__}.{field_name}", default)
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            for name in _LITERAL.findall(path.read_text()):
                if f"{name}_" not in prefixes():  # a prefix is not a variable
                    names.setdefault(name, (str(path.relative_to(REPO)), PydanticUndefined))
    return names


def prefixes() -> set[str]:
    return {str(cls.model_config.get("env_prefix", "")) for cls in settings_models()} - {""}


def documented() -> dict[str, tuple[str, str]]:
    """Variable name -> (doc file, the row's default cell), from the docs' table rows. A row's
    first cell names variables in full, or as ``_SUFFIX`` of its first name's prefix, or as
    ``SUFFIX`` under a heading that names the prefix (``## Settings (`BRAINSTREAM_EXPORT_*`)``).
    """
    known_prefixes = sorted(prefixes(), key=len, reverse=True)
    rows: dict[str, tuple[str, str]] = {}
    for doc in DOCS:
        heading = ""
        for line in doc.read_text().splitlines():
            if line.startswith("#"):
                match = re.search(r"`(BRAINSTREAM_[A-Z0-9_]*_)\*`", line)
                heading = match.group(1) if match else ""
                continue
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not line.startswith("|") or len(cells) < 3:
                continue
            tokens = _TOKEN.findall(cells[0])
            if not tokens:
                continue
            first = tokens[0]
            if first.startswith("BRAINSTREAM_"):
                base = next((p for p in known_prefixes if first.startswith(p)), "BRAINSTREAM_")
            elif heading:
                base = heading
            else:
                continue
            for token in tokens:
                if token.startswith("BRAINSTREAM_"):
                    name = token
                elif token.startswith("_"):
                    name = base + token[1:]
                else:
                    name = base + token
                rows[name] = (doc.name, cells[1])
    return rows


def _shows(cell: str, shown: str) -> bool:
    """Whether the default cell shows ``shown`` (numbers compared as numbers)."""
    words = re.findall(r"[A-Za-z0-9_.:/$<>{}\[\]@-]+", cell)
    if shown in words or f"`{shown}`" in cell:
        return True
    try:
        value = float(shown)
    except ValueError:
        return False
    for word in words:
        try:
            if float(word.rstrip(".")) == value:
                return True
        except ValueError:
            continue
    return False


def render(default: Any) -> str | None:
    """How the docs show ``default`` (``None``: not checked, e.g. a computed path)."""
    if default is PydanticUndefined or default is None or default == "":
        return None
    if isinstance(default, SecretStr):
        return default.get_secret_value()
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, Enum):
        return str(default.value)
    if isinstance(default, int | float | str):
        return str(default)
    if isinstance(default, dict | list) and not default:
        return "{}" if isinstance(default, dict) else "[]"
    return None


def test_every_variable_read_is_documented_with_its_default() -> None:
    docs = documented()
    problems: list[str] = []
    for name, (where, default) in sorted(read_variables().items()):
        shown = render(default)
        row = f"| `{name}` | `{shown if shown is not None else '…'}` | what it does |"
        if name not in docs:
            problems.append(f"{name} (read by {where}) is not documented: add {row}")
        elif not docs[name][1]:
            problems.append(f"{name}: {docs[name][0]} gives no default: {row}")
        elif shown is not None and not _shows(docs[name][1], shown):
            problems.append(
                f"{name}: {docs[name][0]} says the default is {docs[name][1]!r}, the code "
                f"{shown!r} ({where})"
            )
    assert not problems, "the docs do not match the settings:\n" + "\n".join(problems)


def test_every_documented_variable_is_read() -> None:
    read = read_variables()
    unused = [f"{name} ({doc})" for name, (doc, _) in documented().items() if name not in read]
    assert not unused, "documented but read nowhere (remove from the docs): " + ", ".join(unused)


def test_compose_runs_the_kafka_version_of_the_local_services() -> None:
    import yaml

    from brainstream.dev.kafka import KAFKA_VERSION

    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    image = compose["services"]["kafka"]["image"]
    assert image == f"apache/kafka:{KAFKA_VERSION}", (
        f"docker-compose.yml runs {image}, `brainstream dev up` Kafka {KAFKA_VERSION}"
    )
