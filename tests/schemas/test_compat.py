"""The compatibility gate (``brainstream schemas check``): no broker, no database."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest
from pydantic import Field, StringConstraints
from typer.testing import CliRunner

from brainstream.cli import app
from schemas.compat import ADVICE, IncompatibleSchema, Problem, check
from schemas.envelope import Event, Properties, UrlPath
from schemas.events import PageView
from schemas.jsonschema import JSON_DIR, export, published, render, version_file
from schemas.registry import EventRegistry


def _page_view(**fields: Any) -> EventRegistry:
    """A registry whose page_view v1 has the given property fields (as annotations)."""
    props = type(
        "PageViewProperties",
        (Properties,),
        {"__annotations__": {k: v[0] for k, v in fields.items()}}
        | {k: v[1] for k, v in fields.items() if v[1] is not ...},
    )
    event = type(
        "PageView",
        (Event,),
        {
            "__annotations__": {"type": Literal["page_view"], "properties": props},
            "type": "page_view",
        },
    )
    reg = EventRegistry(load_entry_points=False)
    reg.register(event)
    return reg


TODAY: dict[str, tuple[Any, Any]] = {
    "path": (UrlPath, ...),
    "referrer": (UrlPath | None, None),
    "duration_ms": (int | None, Field(default=None, ge=0, le=86_400_000)),
}


@pytest.fixture
def published_dir(tmp_path: Path) -> Iterator[Path]:
    """A JSON directory where today's page_view v1 is published."""
    export(tmp_path, _page_view(**TODAY))
    yield tmp_path


def _rules(problems: list[Problem]) -> list[tuple[str, str]]:
    return [(p.field, p.rule) for p in problems]


def test_todays_page_view_is_compatible_with_itself(published_dir: Path) -> None:
    assert check(published_dir, _page_view(**TODAY)) == []


def test_an_added_optional_field_passes(published_dir: Path) -> None:
    reg = _page_view(**TODAY, surface=(Literal["web", "ios"] | None, None))
    assert check(published_dir, reg) == []


def test_a_new_required_field_fails(published_dir: Path) -> None:
    problems = check(published_dir, _page_view(**TODAY, surface=(Literal["web", "ios"], ...)))
    assert _rules(problems) == [("properties.surface", "new_required")]
    assert problems[0].type == "page_view" and problems[0].version == 1
    assert str(problems[0]).endswith(ADVICE)


def test_an_optional_field_made_required_fails(published_dir: Path) -> None:
    problems = check(published_dir, _page_view(**{**TODAY, "referrer": (UrlPath, ...)}))
    assert ("properties.referrer", "new_required") in _rules(problems)


def test_a_removed_field_fails(published_dir: Path) -> None:
    today = dict(TODAY)
    del today["referrer"]
    assert _rules(check(published_dir, _page_view(**today))) == [("properties.referrer", "removed")]


@pytest.mark.parametrize(
    "field",
    [
        ("duration_ms", (int | None, Field(default=None, ge=0, le=1000))),  # lower maximum
        ("duration_ms", (int | None, Field(default=None, ge=10, le=86_400_000))),  # higher min
        ("path", (Annotated[str, StringConstraints(max_length=64, pattern=r"^/")], ...)),
        ("referrer", (Literal["/a", "/b"] | None, None)),  # an enum where any path went
    ],
)
def test_a_narrowed_bound_fails(published_dir: Path, field: tuple[str, Any]) -> None:
    name, rule = field
    problems = check(published_dir, _page_view(**{**TODAY, name: rule}))
    assert problems and all(r == (f"properties.{name}", "narrowed") for r in _rules(problems))


def test_a_widened_bound_passes(published_dir: Path) -> None:
    wider = (int | None, Field(default=None, ge=0, le=10 * 86_400_000))
    assert check(published_dir, _page_view(**{**TODAY, "duration_ms": wider})) == []


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("duration_ms", (str | None, None)),  # integer -> string
        ("duration_ms", (int, Field(default=0, ge=0, le=86_400_000))),  # no longer null
    ],
)
def test_a_changed_field_type_fails(published_dir: Path, name: str, rule: Any) -> None:
    problems = check(published_dir, _page_view(**{**TODAY, name: rule}))
    assert (f"properties.{name}", "type_changed") in _rules(problems)


def test_integer_to_number_is_a_widening(published_dir: Path) -> None:
    wider = (float | None, Field(default=None, ge=0, le=86_400_000))
    assert check(published_dir, _page_view(**{**TODAY, "duration_ms": wider})) == []


def test_a_published_version_that_is_gone_and_a_missing_upcaster_fail(
    published_dir: Path,
) -> None:
    empty = EventRegistry(load_entry_points=False)
    assert _rules(check(published_dir, empty)) == [("schema_version", "version_removed")]
    from tests.schemas.test_versions import PageViewV2

    reg = EventRegistry(load_entry_points=False)
    reg.register(PageView)
    reg.register(PageViewV2)
    problems = check(published_dir, reg)
    assert [(p.version, p.rule) for p in problems] == [(1, "no_upcaster")]
    # the version is already bumped: the advice is the missing step, not another bump
    assert str(problems[0]).endswith(
        "register an upcaster for this step (@upcaster(type, version))"
    )
    gone = check(published_dir, empty)
    assert "bump" not in str(gone[0]) and "keep the version registered" in str(gone[0])


def test_a_new_version_beside_the_published_one_passes(published_dir: Path) -> None:
    from tests.schemas.test_versions import PageViewV2, _v1_to_v2

    reg = EventRegistry(load_entry_points=False)
    reg.register(PageView)
    reg.register(PageViewV2)
    reg.upcaster("page_view", 1)(_v1_to_v2)
    assert check(published_dir, reg) == []
    export(published_dir, reg)
    assert (published_dir / version_file("page_view", 2)).exists()


def test_export_refuses_to_overwrite_a_published_version_incompatibly(
    published_dir: Path,
) -> None:
    before = published(published_dir)
    narrowed = _page_view(**{**TODAY, "referrer": (UrlPath, ...)})
    with pytest.raises(IncompatibleSchema, match="bump schema_version"):
        export(published_dir, narrowed)
    assert published(published_dir) == before
    export(published_dir, narrowed, force=True)
    assert published(published_dir) != before


def test_the_library_verdict_is_reported_when_no_rule_names_the_change() -> None:
    from schemas.compat import compare

    old = {"type": "object", "properties": {"a": {"type": "string"}}, "minProperties": 0}
    new = {"type": "object", "properties": {"a": {"type": "string"}}, "not": {"required": ["a"]}}
    assert _rules(compare("t", 1, old, new)) == [("<event>", "incompatible")]


def test_the_checked_in_schemas_pass_the_gate() -> None:
    assert check() == []
    assert set(published(JSON_DIR)) == set(render())


def test_the_cli_names_type_field_and_rule_and_exits_1(published_dir: Path) -> None:
    work = published_dir.parent / "gate"
    shutil.copytree(published_dir, work)
    runner = CliRunner()
    ok = runner.invoke(app, ["schemas", "check", str(JSON_DIR)])
    assert ok.exit_code == 0, ok.output
    page_view = work / version_file("page_view", 1)
    text = page_view.read_text(encoding="utf-8")
    # published with a field the current model no longer has: "removed"
    page_view.write_text(
        text.replace(
            '"properties": {\n        "duration_ms"',
            '"properties": {\n        "gone": {"type": "string"},\n        "duration_ms"',
        ),
        encoding="utf-8",
    )
    bad = runner.invoke(app, ["schemas", "check", str(work)])
    assert bad.exit_code == 1
    assert "page_view v1: properties.gone: removed" in bad.output
    assert ADVICE in bad.output


def test_without_jsoncompat_the_gate_says_what_to_install(
    published_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "jsoncompat", None)  # import fails as if not installed
    result = CliRunner().invoke(app, ["schemas", "check", str(published_dir)])
    assert result.exit_code == 2
    assert "pip install 'brainstream[dev]'" in result.output
