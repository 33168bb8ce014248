"""Topic names and record headers: the wire-level contract between the packages."""

from __future__ import annotations

from typing import Final

EVENTS: Final = "brainstream.events"
DLQ: Final = "brainstream.events.dlq"
ACCEPTED: Final = "brainstream.events.accepted"
"""What the raw sink stored, one batch record per sink batch and source partition
(format: :mod:`schemas.accepted`)."""
ERASURES: Final = "brainstream.erasures"

# Headers every event record carries (values are UTF-8 bytes).
H_TYPE: Final = "bs.type"
H_SCHEMA_VERSION: Final = "bs.schema_version"
H_SOURCE: Final = "bs.source"

# Dead-letter headers, in the style of Kafka Connect's ``__connect.errors.*``.
DLQ_PREFIX: Final = "bs.dlq."
