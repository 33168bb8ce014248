"""brainstream's contracts: the event envelope, event types, topics, codec and DDL."""

from schemas import topics
from schemas.codec import decode, encode, headers, to_record
from schemas.envelope import MAX_EVENT_BYTES, Event, Properties
from schemas.errors import (
    BrainstreamError,
    FieldError,
    InvalidEvent,
    UnknownEventType,
    UnknownSchemaVersion,
)
from schemas.events import (
    CORE_EVENT_TYPES,
    FileUpload,
    Login,
    Logout,
    PageView,
    ProfileUpdate,
    Search,
    TaskCreated,
    TaskDeleted,
    TaskUpdated,
)
from schemas.ids import new_event_id
from schemas.registry import REGISTRY, EventRegistry, register, upcaster

__all__ = [
    "CORE_EVENT_TYPES",
    "MAX_EVENT_BYTES",
    "REGISTRY",
    "BrainstreamError",
    "Event",
    "EventRegistry",
    "FieldError",
    "FileUpload",
    "InvalidEvent",
    "Login",
    "Logout",
    "PageView",
    "ProfileUpdate",
    "Properties",
    "Search",
    "TaskCreated",
    "TaskDeleted",
    "TaskUpdated",
    "UnknownEventType",
    "UnknownSchemaVersion",
    "decode",
    "encode",
    "headers",
    "new_event_id",
    "register",
    "to_record",
    "topics",
    "upcaster",
]
