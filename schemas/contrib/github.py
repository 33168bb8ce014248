"""Example of a service-defined event type: a call to the GitHub API (rate-limit monitoring).

Nothing else in brainstream names this type: the sink stores it in JSONB and the aggregates key
it by name. It is registered through the ``brainstream.event_types`` entry point.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from schemas.envelope import Event, Properties
from schemas.registry import register

Endpoint = Annotated[
    str, StringConstraints(min_length=1, max_length=256, pattern=r"^/[A-Za-z0-9_./{}:\-]*$")
]


class GithubApiCallProperties(Properties):
    endpoint: Endpoint
    """Route template, e.g. ``/repos/{owner}/{repo}/pulls`` (no concrete owner names)."""
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    status: int = Field(ge=100, le=599)
    rate_limit_remaining: int = Field(ge=0, le=1_000_000)
    duration_ms: int | None = Field(default=None, ge=0, le=600_000)


@register
class GithubApiCall(Event):
    type: Literal["github_api_call"] = "github_api_call"
    properties: GithubApiCallProperties
