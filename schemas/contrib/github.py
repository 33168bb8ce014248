"""Example of a service-defined event type: a call to the GitHub API (rate-limit monitoring).

Nothing else in brainstream names this type: the sink stores it in JSONB and the aggregates key
it by name. It is registered through the ``brainstream.event_types`` entry point.

It is also the worked example of a type that changed (docs/evolution.md): three versions are
registered side by side, each step with its upcaster, so records of every version on the topic
are read in the latest shape.

- v1: ``endpoint``, ``method`` (default ``GET``), ``status``, ``rate_limit_remaining``,
  ``duration_ms``.
- v2: ``duration_ms`` renamed ``latency_ms``; ``method`` required (upcaster: fill the v1
  default and rename).
- v3: a required ``resource``, GitHub's rate-limit bucket (upcaster: derive it from the
  endpoint, as GitHub does: ``/search/...`` is ``search``, ``/graphql`` is ``graphql``, the
  rest ``core``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from schemas.envelope import Event, Properties
from schemas.registry import register, upcaster

Endpoint = Annotated[
    str, StringConstraints(min_length=1, max_length=256, pattern=r"^/[A-Za-z0-9_./{}:\-]*$")
]
Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
Resource = Literal["core", "search", "graphql"]


class GithubApiCallV1Properties(Properties):
    endpoint: Endpoint
    """Route template, e.g. ``/repos/{owner}/{repo}/pulls`` (no concrete owner names)."""
    method: Method = "GET"
    status: int = Field(ge=100, le=599)
    rate_limit_remaining: int = Field(ge=0, le=1_000_000)
    duration_ms: int | None = Field(default=None, ge=0, le=600_000)


class GithubApiCallV2Properties(Properties):
    endpoint: Endpoint
    method: Method
    status: int = Field(ge=100, le=599)
    rate_limit_remaining: int = Field(ge=0, le=1_000_000)
    latency_ms: int | None = Field(default=None, ge=0, le=600_000)


class GithubApiCallProperties(Properties):
    endpoint: Endpoint
    """Route template, e.g. ``/repos/{owner}/{repo}/pulls`` (no concrete owner names)."""
    method: Method
    resource: Resource
    """GitHub's rate-limit bucket the call counts against."""
    status: int = Field(ge=100, le=599)
    rate_limit_remaining: int = Field(ge=0, le=1_000_000)
    latency_ms: int | None = Field(default=None, ge=0, le=600_000)


@register
class GithubApiCallV1(Event):
    type: Literal["github_api_call"] = "github_api_call"
    properties: GithubApiCallV1Properties


@register
class GithubApiCallV2(Event):
    type: Literal["github_api_call"] = "github_api_call"
    schema_version: Literal[2] = 2
    properties: GithubApiCallV2Properties


@register
class GithubApiCall(Event):
    """The latest version: what ``track("github_api_call", ...)`` produces."""

    type: Literal["github_api_call"] = "github_api_call"
    schema_version: Literal[3] = 3
    properties: GithubApiCallProperties


@upcaster("github_api_call", 1)
def _v1_to_v2(props: dict[str, Any]) -> dict[str, Any]:
    """Fill ``method``'s v1 default; rename ``duration_ms`` to ``latency_ms``."""
    out = {"method": "GET", **props}
    if "duration_ms" in out:
        out["latency_ms"] = out.pop("duration_ms")
    return out


@upcaster("github_api_call", 2)
def _v2_to_v3(props: dict[str, Any]) -> dict[str, Any]:
    """Derive ``resource`` from the endpoint."""
    return {**props, "resource": resource_of(props["endpoint"])}


def resource_of(endpoint: str) -> Resource:
    """GitHub's rate-limit bucket of a route template."""
    if endpoint.startswith("/search/"):
        return "search"
    if endpoint == "/graphql":
        return "graphql"
    return "core"
