"""Database-level contract shared by ``sinks`` and ``streams`` (they meet only here and in SQL).

Erasure and writers are serialised by one advisory lock: every sink batch transaction and every
worker batch transaction first takes ``pg_advisory_xact_lock_shared(ERASURE_LOCK_KEY)``; an
erasure takes ``pg_advisory_xact_lock(ERASURE_LOCK_KEY)``. So a writer that read
``erased_users`` before an erasure committed cannot write that user's rows after it.
"""

from __future__ import annotations

from typing import Final

ERASURE_LOCK_KEY: Final = 0x6272_6572_6173  # "breras"

EVENTS_TABLE: Final = "analytics_events"
ERASED_USERS_TABLE: Final = "erased_users"
TYPE_BUCKETS_TABLE: Final = "agg_type_buckets"
USER_DAYS_TABLE: Final = "agg_user_days"
STREAM_OFFSETS_TABLE: Final = "stream_offsets"
GRANULARITIES: Final = ("minute", "hour", "day")
