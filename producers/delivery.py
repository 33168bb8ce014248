"""Where every event ends up: delivered, spooled, re-sent or dropped (with a reason).

Delivery reports arrive on the poller thread. Each failure is classified (:func:`classify`):

- ``permanent``: no re-send can succeed (the broker refuses the record itself, its size or
  timestamp, or this client's rights to the topic). Dropped once, with the error's name as
  the reason (``dropped_total{reason="INVALID_TIMESTAMP"}``) and an ``EventsDropped``.
- ``unreachable``: the broker was not reached (timed out, transport down, purged). Spooled;
  re-sends wait for the broker (the poller probes it) and are not counted as attempts.
- ``transient``: the broker answered with an error that may pass (no leader, not enough
  replicas, unknown topic, anything unknown). Spooled and re-sent, at most
  ``TrackerConfig.max_attempts`` failed deliveries in all, then dropped as
  ``retries_exhausted``.

The attempt count travels with the spooled record in a header that only the spool sees
(:data:`ATTEMPTS`; stripped before each re-send). Problems are counted per reason and handed
to ``on_error``/the log once per poller tick, never once per event.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Literal

from confluent_kafka import KafkaError

from producers.counters import Counter, TrackerStats
from producers.errors import DeliveryFailed, EventsDropped, TrackingError
from producers.ratelog import RateLimitedLog
from producers.spool import Record, Segment, Spool, read_records

log = logging.getLogger("brainstream.producers")

OnError = Callable[[TrackingError], None]

ATTEMPTS = "brainstream-sdk-attempts"
"""Spool-only header: failed deliveries of the record so far (never sent to Kafka)."""

Outcome = Literal["permanent", "unreachable", "transient"]

PERMANENT = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.INVALID_MSG,
        KafkaError.INVALID_RECORD,
        KafkaError.INVALID_TIMESTAMP,  # the producer host's clock is outside the broker's window
        KafkaError.UNSUPPORTED_FOR_MESSAGE_FORMAT,
        KafkaError.INVALID_REQUIRED_ACKS,
        KafkaError.POLICY_VIOLATION,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        KafkaError.SASL_AUTHENTICATION_FAILED,
        KafkaError._AUTHENTICATION,
        KafkaError._INVALID_ARG,
    }
)
"""librdkafka delivery errors no re-send can fix: the record or the client's rights are refused."""

UNREACHABLE = frozenset(
    {
        KafkaError._MSG_TIMED_OUT,
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._PURGE_QUEUE,
        KafkaError._PURGE_INFLIGHT,
        KafkaError._DESTROY,
        KafkaError._FATAL,  # the producer is replaced; the record itself is fine
        KafkaError._TIMED_OUT,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.NETWORK_EXCEPTION,
    }
)
"""Errors that say the broker was not reached: re-sent when it is back, no attempt counted."""


def classify(err: KafkaError) -> Outcome:
    """``permanent``, ``unreachable`` or ``transient`` (anything else, bounded re-sends)."""
    code = err.code()
    if code in PERMANENT:
        return "permanent"
    if code in UNREACHABLE:
        return "unreachable"
    return "transient"


class Outbox:
    """Accounting and spooling shared by the caller threads and the poller thread."""

    def __init__(
        self,
        spool: Spool,
        on_error: OnError | None,
        ratelog: RateLimitedLog,
        max_attempts: int = 5,
    ) -> None:
        self.spool = spool
        self.max_attempts = max_attempts
        self._on_error = on_error
        self._ratelog = ratelog
        self.reset_counters()

    def reset_counters(self) -> None:
        self.tracked, self.delivered, self.invalid = Counter(), Counter(), Counter()
        self.spooled, self.resent, self.recovered = Counter(), Counter(), Counter()
        self.failed = Counter()
        self.filtered = Counter()
        self.bypassed = Counter()
        """Tracked events that never reached librdkafka (spooled on overflow, or closed)."""
        self._problems_lock = threading.Lock()
        self._dropped: dict[str, int] = {}
        self._pending: dict[tuple[str, str], int] = {}
        self.broker_down = False
        self._unsent: list[Record] = []
        """Records of the segment being re-sent that are not produced yet."""
        self._report: BatchReport | None = None

    # --- reports from librdkafka (poller thread) -----------------------------------------
    def on_delivery(self, err: KafkaError | None, msg: Any, attempts: int = 0) -> None:
        """A delivery report; ``attempts``: failed deliveries of this record before this one."""
        if err is None:
            self.delivered.inc()
            self.broker_down = False
            return
        self.failed.inc()
        outcome = classify(err)
        if outcome == "permanent":
            self.drop(err.name(), 1)
            return
        if outcome == "unreachable":
            if err.code() in (KafkaError._MSG_TIMED_OUT, KafkaError._TRANSPORT):
                self.broker_down = True
        else:
            attempts += 1
            if attempts >= self.max_attempts:
                self.drop("retries_exhausted", 1, f"{err.name()} after {attempts} attempts")
                return
        self.problem("delivery_failed", err.name(), 1)
        headers = msg.headers() or []
        if attempts:
            headers = [*headers, (ATTEMPTS, b"%d" % attempts)]
        self.to_spool(msg.key(), msg.value(), headers)

    # --- spooling (any thread) -----------------------------------------------------------
    def to_spool(self, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        try:
            lost = self.spool.append(key, value, headers)
        except OSError as exc:
            self.drop("spool_error", 1, str(exc))
            return
        self.spooled.inc()
        if lost:
            self.drop("spool_full", lost)

    @property
    def resending(self) -> bool:
        return bool(self._unsent)

    def resend(self, produce: Callable[..., None], room: int) -> int:
        """Re-produce up to ``room`` spooled records, oldest first; returns how many."""
        if not self._unsent:
            seg = self.spool.take()
            if seg is None:
                return 0
            self._unsent = list(read_records(seg.path))
            self._unsent.reverse()  # pop() from the end = oldest first
            self._report = BatchReport(self, seg, len(self._unsent))
        sent = 0
        report = self._report
        assert report is not None
        while self._unsent and sent < room:
            key, value, headers = self._unsent.pop()
            attempts = 0
            if headers and headers[-1][0] == ATTEMPTS:
                attempts = int(headers[-1][1])
                headers = headers[:-1]
            try:
                produce(value=value, key=key, headers=headers, on_delivery=report.of(attempts))
            except BufferError:
                if attempts:
                    headers = [*headers, (ATTEMPTS, b"%d" % attempts)]
                self._unsent.append((key, value, headers))
                break
            self.resent.inc()
            sent += 1
        return sent

    # --- problems ------------------------------------------------------------------------
    def drop(self, reason: str, count: int, detail: str = "") -> None:
        with self._problems_lock:
            self._dropped[reason] = self._dropped.get(reason, 0) + count
        self.problem("dropped", reason, count, detail)

    def problem(self, kind: str, reason: str, count: int, detail: str = "") -> None:
        with self._problems_lock:
            key = (kind, reason if not detail else f"{reason}: {detail}")
            self._pending[key] = self._pending.get(key, 0) + count

    def report(self) -> None:
        """Hand the problems gathered since the last call to ``on_error`` and the log."""
        with self._problems_lock:
            pending, self._pending = self._pending, {}
        for (kind, reason), count in pending.items():
            error: TrackingError
            if kind == "dropped":
                error = EventsDropped(reason.split(":", 1)[0], count, reason)
            else:
                error = DeliveryFailed(reason, count)
            self._ratelog.warning(f"{kind}:{reason}", str(error), count)
            self.notify(error)

    def notify(self, error: TrackingError) -> None:
        if self._on_error is None:
            return
        try:
            self._on_error(error)
        except Exception:  # the host's callback must not break the SDK
            self._ratelog.warning("on_error", "on_error callback raised")
            log.debug("on_error callback raised", exc_info=True)

    # --- snapshot ------------------------------------------------------------------------
    def _in_flight(self, tracked: int, delivered: int) -> int:
        produced = tracked + self.resent.value - self.bypassed.value
        return produced - delivered - self.failed.value

    def stats(self) -> TrackerStats:
        with self._problems_lock:
            by_reason = dict(self._dropped)
        delivered, tracked = self.delivered.value, self.tracked.value
        return TrackerStats(
            tracked=tracked,
            delivered=delivered,
            invalid=self.invalid.value,
            spooled=self.spooled.value,
            resent=self.resent.value,
            recovered=self.recovered.value,
            dropped=sum(by_reason.values()),
            in_flight=self._in_flight(tracked, delivered),
            in_spool=self.spool.waiting + len(self._unsent),
            dropped_by_reason=by_reason,
            filtered=self.filtered.value,
        )


class BatchReport:
    """Delivery callback of a re-sent segment: deletes it once every record is settled."""

    __slots__ = ("_outbox", "_remaining", "_seg")

    def __init__(self, outbox: Outbox, seg: Segment, records: int) -> None:
        self._outbox = outbox
        self._seg = seg
        self._remaining = records
        if not records:
            outbox.spool.release(seg)

    def of(self, attempts: int) -> Callable[[KafkaError | None, Any], None]:
        """The delivery callback of one re-sent record that failed ``attempts`` times before."""
        if not attempts:
            return self

        def report(err: KafkaError | None, msg: Any) -> None:
            self._outbox.on_delivery(err, msg, attempts)
            self.settle()

        return report

    def __call__(self, err: KafkaError | None, msg: Any) -> None:
        self._outbox.on_delivery(err, msg)
        self.settle()

    def settle(self) -> None:
        self._remaining -= 1
        if self._remaining == 0:
            self._outbox.spool.release(self._seg)
