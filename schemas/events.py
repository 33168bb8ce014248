"""The nine event types of the original system, each with a strict property model."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from schemas.envelope import Event, FieldName, Label, ObjectId, Properties, UrlPath
from schemas.registry import register

ChangedFields = Annotated[tuple[FieldName, ...], Field(min_length=1, max_length=32)]


class PageViewProperties(Properties):
    path: UrlPath
    referrer: UrlPath | None = None
    duration_ms: int | None = Field(default=None, ge=0, le=86_400_000)


class TaskCreatedProperties(Properties):
    task_id: ObjectId
    project_id: ObjectId | None = None
    priority: Literal["low", "medium", "high", "urgent"] | None = None


class TaskUpdatedProperties(Properties):
    task_id: ObjectId
    changed_fields: ChangedFields
    status: Literal["todo", "in_progress", "blocked", "done"] | None = None


class TaskDeletedProperties(Properties):
    task_id: ObjectId


class FileUploadProperties(Properties):
    file_id: ObjectId
    mime_type: Annotated[str, Field(max_length=127, pattern=r"^[a-z0-9.+\-]+/[a-z0-9.+\-]+$")]
    size_bytes: int = Field(ge=0, le=1 << 40)


class SearchProperties(Properties):
    """No query text: only its shape, so no personal data rides along."""

    query_length: int = Field(ge=0, le=4096)
    result_count: int = Field(ge=0, le=1_000_000_000)
    filters: tuple[FieldName, ...] = Field(default=(), max_length=16)
    latency_ms: int | None = Field(default=None, ge=0, le=600_000)


class LoginProperties(Properties):
    method: Literal["password", "oauth", "sso", "magic_link", "passkey"]
    provider: Label | None = None
    success: bool = True


class LogoutProperties(Properties):
    reason: Literal["user", "timeout", "revoked"] = "user"
    session_seconds: int | None = Field(default=None, ge=0, le=31_536_000)


class ProfileUpdateProperties(Properties):
    """Names of the changed fields only; values stay in the service's own database."""

    changed_fields: ChangedFields


@register
class PageView(Event):
    type: Literal["page_view"] = "page_view"
    properties: PageViewProperties


@register
class TaskCreated(Event):
    type: Literal["task_created"] = "task_created"
    properties: TaskCreatedProperties


@register
class TaskUpdated(Event):
    type: Literal["task_updated"] = "task_updated"
    properties: TaskUpdatedProperties


@register
class TaskDeleted(Event):
    type: Literal["task_deleted"] = "task_deleted"
    properties: TaskDeletedProperties


@register
class FileUpload(Event):
    type: Literal["file_upload"] = "file_upload"
    properties: FileUploadProperties


@register
class Search(Event):
    type: Literal["search"] = "search"
    properties: SearchProperties


@register
class Login(Event):
    type: Literal["login"] = "login"
    properties: LoginProperties


@register
class Logout(Event):
    type: Literal["logout"] = "logout"
    properties: LogoutProperties


@register
class ProfileUpdate(Event):
    type: Literal["profile_update"] = "profile_update"
    properties: ProfileUpdateProperties


CORE_EVENT_TYPES: tuple[type[Event], ...] = (
    PageView,
    TaskCreated,
    TaskUpdated,
    TaskDeleted,
    FileUpload,
    Search,
    Login,
    Logout,
    ProfileUpdate,
)
