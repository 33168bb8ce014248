"""The ``Tracker``: validate, stamp, hand to librdkafka; never block or raise into the caller."""

from __future__ import annotations

import asyncio
import logging
import random
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from time import time_ns
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer
from orjson import JSONEncodeError, dumps
from pydantic import ValidationError
from uuid_utils import uuid7

import schemas
from eventlog.offsets import is_fatal
from producers import context, encoder, forking, metrics
from producers.config import TrackerConfig, default_spool_dir, destination_spool_dir
from producers.context import UserContext, make_context
from producers.counters import TrackerStats
from producers.delivery import OnError, Outbox
from producers.encoder import Encoder, Headers, TypeCodec
from producers.errors import EventRejected, SpoolUnavailable
from producers.memory import MemoryProducer
from producers.ratelog import RateLimitedLog, RateLimitFilter
from producers.settings import SdkSettings
from producers.spool import Spool
from schemas import MAX_EVENT_BYTES, Event, FieldError, InvalidEvent, topics
from schemas.config import (
    KafkaAccessRefused,
    KafkaAuthenticationFailed,
    KafkaSettings,
    TopicSettings,
    access_refused,
)
from schemas.registry import REGISTRY, EventRegistry

log = logging.getLogger("brainstream.producers")
librdkafka_log = logging.getLogger("brainstream.producers.librdkafka")
librdkafka_log.addFilter(RateLimitFilter(10.0))

# Rejections are built per call, never shared: re-raising one module-level instance chains
# every raise's frames onto its traceback (a leak per rejected call; tests/producers/
# test_rejection_memory.py and the module scan in test_no_module_holds_a_prebuilt_exception).
_NO_USER = FieldError("user_id", "missing", "no user_id given and no user context")
_AMBIGUOUS = FieldError(
    "properties", "ambiguous", "give properties= or keyword properties, not both"
)
BeforeSend = Callable[[dict[str, Any]], dict[str, Any] | None]
_current_user = context._current.get
_USER_CACHE_MAX = 10_000
_ADOPT_EVERY = 30.0


class Tracker:
    """Publishes analytics events to Kafka from any thread or asyncio task.

    ``track()`` validates and encodes on the caller's thread (microseconds) and hands the
    record to librdkafka's queue; a daemon thread serves delivery reports, spools failures to
    disk and re-sends them when the broker is back.
    """

    def __init__(
        self,
        kafka: KafkaSettings | None = None,
        *,
        topic: str = topics.EVENTS,
        config: TrackerConfig | None = None,
        on_error: OnError | None = None,
        before_send: BeforeSend | None = None,
        registry: EventRegistry = REGISTRY,
        clock: Callable[[], float] = time.monotonic,
        **options: Any,
    ) -> None:
        """``before_send(event)``: called with ``{"type", "user_id", "properties",
        "occurred_at"}`` for each ``track(name, ...)`` call, before validation; returns the
        event to send (the same dict, changed or not) or ``None`` to drop it (counted in
        ``stats().filtered``). An ``Event`` instance is already validated: it is not passed.
        If it raises, the event is rejected (``on_error``) and the caller is not."""
        base = config or TrackerConfig()
        self.config = TrackerConfig.model_validate({**base.model_dump(), **options})
        self.source = context.check_id(self.config.source, "source")
        self.topic = topic
        self._kafka = kafka or KafkaSettings()
        self._registry = registry
        self._clock = clock
        self._encoder = Encoder(registry, self.source, self.config.schema_versions)
        self._codecs: dict[str, TypeCodec] = {}
        self._users: dict[str, UserContext] = {}
        ratelog = RateLimitedLog(log, self.config.log_interval_seconds, clock)
        spool_dir = self.config.spool_dir or destination_spool_dir(
            self._kafka.bootstrap_servers, topic
        )
        if not self.config.send:  # nothing can fail to send: a private, empty spool
            spool_dir = Path(tempfile.mkdtemp(prefix="brainstream-disabled-"))
        try:
            spool = Spool(spool_dir, self.config.spool_max_bytes)
        except OSError as exc:
            raise SpoolUnavailable(spool_dir, exc) from None
        if self.config.spool_dir is None and self.config.send:
            _warn_of_unkeyed_segments(spool_dir)
        self._outbox = Outbox(spool, on_error, ratelog, self.config.max_attempts)
        self._ratelog = ratelog
        self._closed = False
        self._close_lock = threading.Lock()
        self._fatal: KafkaError | None = None
        self.refused: KafkaAccessRefused | None = None
        """The cluster's last authorization refusal (an ACL missing for this principal), set
        by the client's error callback: the events are spooled meanwhile."""
        self._before_send = before_send
        self._sample_rates = dict(self.config.sample_rates)
        if before_send is not None or self._sample_rates:
            # an instance attribute: the plain hot path pays nothing for the hooks
            self.track = self.track_session_event = self._track_hooked  # type: ignore[method-assign]
        self._start()
        forking.watch(self)
        if self.config.prometheus:
            metrics.expose(self)

    @classmethod
    def from_env(cls, *, on_error: OnError | None = None, **options: Any) -> Tracker:
        """The one entry point for a service configured through its environment (and a
        ``.env`` file in the working directory): Kafka from ``BRAINSTREAM_KAFKA_*``, the topic
        from ``BRAINSTREAM_TOPIC_EVENTS``, every :class:`TrackerConfig` field from
        ``BRAINSTREAM_SDK_*`` (docs/producers.md lists them). ``options`` override the
        environment. Raises :class:`~producers.errors.SpoolUnavailable` like the constructor.
        """
        return cls(
            KafkaSettings(),
            topic=TopicSettings().events,
            config=SdkSettings().tracker_config(),
            on_error=on_error,
            **options,
        )

    @classmethod
    def disabled(cls, **options: Any) -> Tracker:
        """A tracker that validates as usual and keeps events in memory instead of sending
        them (``send=False``): for tests of the host service. :meth:`recorded` returns them."""
        options.setdefault("prometheus", False)
        return cls(KafkaSettings(), send=False, **options)

    def recorded(self) -> list[Event]:
        """The events a disabled tracker kept, decoded as a consumer would; raises
        ``RuntimeError`` on a tracker that sends."""
        if not isinstance(self._producer, MemoryProducer):
            raise RuntimeError("recorded() is for Tracker.disabled() / send=False")
        return self._producer.events()

    # --- the hot path --------------------------------------------------------------------
    def track(
        self,
        event: Event | str,
        /,
        user_id: str | None = None,
        *,
        properties: Mapping[str, Any] | None = None,
        occurred_at: datetime | None = None,
        **props: Any,
    ) -> str | None:
        """Publish one event; returns its event_id, or None if it was rejected.

        ``track(PageView(...))`` or ``track("page_view", path="/x")``. The user is ``user_id``
        or the current :meth:`user` context. Never raises unless ``strict``.
        """
        if occurred_at is None and type(event) is str:
            try:
                ctx = _current_user() if user_id is None else self._user(user_id)
                if ctx is None:
                    raise InvalidEvent([_NO_USER])
                codec = self._codecs.get(event) or self._codec(event)
                if codec is None:
                    return self._track_model(event, ctx, properties, None, props)
                if properties is not None and props:
                    raise InvalidEvent([_AMBIGUOUS])
                payload = properties or props
                fast = codec.fast
                if fast is not None and type(payload) is dict:
                    # TypeCodec.encode inlined: as calls, its parts cost ~0.3 us more a track()
                    try:
                        body = dumps(fast(payload))
                    except (ValidationError, JSONEncodeError):
                        body = codec.model_body(payload)  # accepts, or raises InvalidEvent
                    event_id = str(uuid7())
                    second, nanos = divmod(time_ns(), 1_000_000_000)
                    clock = encoder.CLOCK
                    if clock[0] != second:
                        clock = encoder.tick(second)
                    value = codec.template % (
                        event_id.encode(),
                        ctx.key,
                        clock[1],
                        nanos // 1000,
                        body,
                    )
                    if len(value) > MAX_EVENT_BYTES:
                        raise encoder.oversize()
                else:
                    event_id, value = codec.encode(ctx.key, payload)
            except InvalidEvent as exc:
                return self._reject(event, exc)
            headers = (
                codec.headers if not ctx.extra_headers else [*codec.headers, *ctx.extra_headers]
            )
            self._count_tracked()
            if self._closed:
                self._after_close()
                return None
            try:
                self._produce(self.topic, value, ctx.key, headers=headers)  # type: ignore[arg-type]
            except (BufferError, KafkaException) as exc:
                self._overflow(ctx.key, value, headers, exc)
            return event_id
        return self._track_other(event, user_id, properties, occurred_at, props)

    track_session_event = track
    """``track`` with the user from :meth:`user` (the name services ported from the original
    ``trackSessionEvent`` call)."""

    def _track_hooked(
        self,
        event: Event | str,
        /,
        user_id: str | None = None,
        *,
        properties: Mapping[str, Any] | None = None,
        occurred_at: datetime | None = None,
        **props: Any,
    ) -> str | None:
        """``track`` with sampling and ``before_send`` (installed only when configured)."""
        name = event.type if isinstance(event, Event) else event
        rate = self._sample_rates.get(name) if isinstance(name, str) else None
        if rate is not None and random.random() >= rate:
            self._outbox.filtered.inc()
            return None
        hook = self._before_send
        if hook is None or not isinstance(event, str):
            return Tracker.track(
                self, event, user_id, properties=properties, occurred_at=occurred_at, **props
            )
        ctx = _current_user() if user_id is None else None
        given = {
            "type": event,
            "user_id": user_id if ctx is None else ctx.user_id,
            "properties": dict(props if properties is None else properties),
            "occurred_at": occurred_at,
        }
        try:
            changed = hook(given)
        except Exception as exc:
            error = FieldError(
                "<before_send>", "raised", f"before_send raised {type(exc).__name__}"
            )
            return self._reject(event, InvalidEvent([error]))
        if changed is None:
            self._outbox.filtered.inc()
            return None
        new_user = changed.get("user_id")
        return Tracker.track(
            self,
            changed.get("type", event),
            None if ctx is not None and new_user == ctx.user_id else new_user,
            properties=changed.get("properties") or {},
            occurred_at=changed.get("occurred_at"),
        )

    def _send(self, key: bytes, value: bytes, headers: Headers) -> bool:
        """Queue (or spool) one record; ``False`` when it was dropped (tracked after close)."""
        self._count_tracked()
        if self._closed:
            self._after_close()
            return False
        try:
            self._produce(self.topic, value, key, headers=headers)  # type: ignore[arg-type]
        except (BufferError, KafkaException) as exc:
            self._overflow(key, value, headers, exc)
        return True

    def _after_close(self) -> None:
        """An event tracked after ``close()``: dropped, counted, and handed to ``on_error`` at
        once on the caller's thread (the poller that reports problems has stopped)."""
        self._outbox.bypassed.inc()
        self._outbox.drop("closed", 1)
        self._outbox.report()

    def _overflow(self, key: bytes, value: bytes, headers: Headers, exc: Exception) -> None:
        """librdkafka's queue is full, or the producer hit a fatal error: spool, never block."""
        self._outbox.bypassed.inc()
        reason = "local_queue_full" if isinstance(exc, BufferError) else exc.args[0].name()
        self._outbox.problem("spooled", reason, 1)
        self._outbox.to_spool(key, value, headers)

    def _codec(self, type_name: str) -> TypeCodec | None:
        codec = self._encoder.codec(type_name)
        if codec is not None:
            self._codecs[type_name] = codec
        return codec

    def _user(self, user_id: str) -> UserContext:
        ctx = self._users.get(user_id)
        if ctx is None:
            ctx = make_context(user_id)
            if len(self._users) >= _USER_CACHE_MAX:
                self._users = {}
            self._users[user_id] = ctx
        return ctx

    def _track_other(
        self,
        event: object,
        user_id: str | None,
        properties: Mapping[str, Any] | None,
        occurred_at: datetime | None,
        props: dict[str, Any],
    ) -> str | None:
        name = getattr(event, "type", None) if isinstance(event, Event) else event
        try:
            ctx = _current_user() if user_id is None else self._user(user_id)
            if isinstance(event, Event):
                key, value, headers = schemas.to_record(event)
                extra = list(ctx.extra_headers) if ctx is not None else []
                return str(event.event_id) if self._send(key, value, headers + extra) else None
            if not isinstance(event, str):
                raise InvalidEvent([FieldError("type", "type", "must be an Event or a type name")])
            if ctx is None:
                raise InvalidEvent([_NO_USER])
            return self._track_model(event, ctx, properties, occurred_at, props)
        except InvalidEvent as exc:
            return self._reject(str(name), exc)

    def _track_model(
        self,
        type_name: str,
        ctx: UserContext,
        properties: Mapping[str, Any] | None,
        occurred_at: datetime | None,
        props: dict[str, Any],
    ) -> str | None:
        """The general path: a full model (explicit ``occurred_at``, exotic envelopes)."""
        data: dict[str, Any] = {
            "user_id": ctx.user_id,
            "source": self.source,
            "properties": props if properties is None else properties,
        }
        if occurred_at is not None:
            data["occurred_at"] = occurred_at
        try:
            pin = self.config.schema_versions.get(type_name)
            event = self._registry.build(type_name, data, pin)
            key, value, headers = schemas.to_record(event)
        except InvalidEvent as exc:
            return self._reject(type_name, exc)
        sent = self._send(key, value, headers + list(ctx.extra_headers))
        return str(event.event_id) if sent else None

    def _reject(self, type_name: str, exc: InvalidEvent) -> str | None:
        self._outbox.invalid.inc()
        if self.config.strict:
            raise exc
        error = EventRejected(type_name, exc)
        self._ratelog.warning(f"invalid:{type_name}", str(error))
        self._outbox.notify(error)
        return None

    # --- user context --------------------------------------------------------------------
    @staticmethod
    @contextmanager
    def user(
        user_id: str, *, session_id: str | None = None, request_id: str | None = None
    ) -> Iterator[UserContext]:
        """``with tracker.user("u-42"):`` every event inside is stamped with that user."""
        with context.user(user_id, session_id=session_id, request_id=request_id) as ctx:
            yield ctx

    # --- lifecycle -----------------------------------------------------------------------
    def _start(self) -> None:
        conf = self.config.producer_conf(self._kafka.librdkafka())
        conf["on_delivery"] = self._outbox.on_delivery
        conf["error_cb"] = self._on_kafka_error
        conf["logger"] = librdkafka_log
        self._conf = conf
        self._producer = Producer(conf) if self.config.send else MemoryProducer(conf["on_delivery"])
        self._produce = self._producer.produce
        self._count_tracked = self._outbox.tracked.inc
        self._stop = threading.Event()
        self._adopt_at = 0.0
        self._poller = threading.Thread(
            target=self._poll_loop, name="brainstream-tracker", daemon=True
        )
        self._poller.start()

    def _on_kafka_error(self, err: KafkaError) -> None:
        denied = access_refused(err, self._kafka.sasl_username, f"writing to {self.topic!r}")
        if denied is not None:  # e.g. no idempotent producer id: no Write on any topic
            self.refused = denied
            self._ratelog.warning(f"kafka:{err.name()}", f"{denied}; events are spooled")
        if is_fatal(err):
            self._fatal = err
        if denied is not None:
            return
        elif err.code() == KafkaError._ALL_BROKERS_DOWN:
            self._outbox.broker_down = True
        elif err.code() in (KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED):
            refused = KafkaAuthenticationFailed(self._kafka.sasl_username, err.str())
            self._ratelog.warning(f"kafka:{err.name()}", f"{refused}; events are spooled")
            return
        self._ratelog.warning(f"kafka:{err.name()}", f"Kafka: {err.str()}")

    def _poll_loop(self) -> None:
        next_tick = 0.0
        while not self._stop.is_set():
            try:
                self._producer.poll(0.05)
            except KafkaException as exc:  # a fatal error: the producer is replaced below
                self._on_kafka_error(exc.args[0])
            now = self._clock()
            if now >= next_tick:
                next_tick = now + self.config.resend_interval_seconds
                try:
                    self._tick(now)
                except Exception:
                    self._ratelog.warning("poller", "tracker maintenance failed")
                    log.debug("tracker maintenance failed", exc_info=True)

    def _tick(self, now: float) -> None:
        outbox = self._outbox
        if self._fatal is not None:
            self._replace_producer()
        if now >= self._adopt_at:
            self._adopt_at = now + _ADOPT_EVERY
            outbox.recovered.add(outbox.spool.adopt_orphans())
        if outbox.spool.waiting or outbox.resending:
            if outbox.broker_down:
                self._probe()
            room = self.config.queue_max_messages // 2 - len(self._producer)
            while not outbox.broker_down and room > 0:
                sent = outbox.resend(self._produce_to_topic, room)
                if not sent:
                    break
                room -= sent
        outbox.report()

    def _produce_to_topic(self, **kwargs: Any) -> None:
        self._produce(self.topic, **kwargs)

    def _probe(self) -> None:
        try:
            self._producer.list_topics(
                self.topic, timeout=min(2.0, self.config.resend_interval_seconds * 2)
            )
        except KafkaException:
            return
        self._outbox.broker_down = False

    def _replace_producer(self) -> None:
        old, self._fatal = self._producer, None
        self._producer = Producer(self._conf)
        self._produce = self._producer.produce
        old.purge()
        old.poll(0)  # purged records come back through on_delivery: spooled
        self._ratelog.warning("fatal", "Kafka producer hit a fatal error; replaced it")

    def flush(self, timeout: float = 5.0) -> int:
        """Wait up to ``timeout`` s for the local queue to drain; returns what is left."""
        return int(self._producer.flush(timeout))

    async def aflush(self, timeout: float = 5.0) -> int:
        """:meth:`flush` for async code: waits without blocking the event loop."""
        deadline = self._clock() + timeout
        while len(self._producer) and self._clock() < deadline:
            await asyncio.sleep(0.005)
        return len(self._producer)

    def close(self, timeout: float | None = None) -> TrackerStats:
        """Flush up to ``timeout`` s, spool what is left, stop the poller. Idempotent."""
        with self._close_lock:
            if self._closed:
                return self.stats()
            self._closed = True
        budget = self.config.close_timeout_seconds if timeout is None else timeout
        deadline = self._clock() + budget
        self._producer.flush(budget)
        self._stop.set()
        self._poller.join(max(0.1, deadline - self._clock()))
        if len(self._producer):
            self._producer.purge()
            self._producer.poll(0)  # purged records are spooled for the next process
        self._outbox.report()
        self._outbox.spool.close()
        if not self.config.send:
            shutil.rmtree(self._outbox.spool.directory, ignore_errors=True)
        forking.forget(self)
        return self.stats()

    async def aclose(self, timeout: float | None = None) -> TrackerStats:
        return await asyncio.get_running_loop().run_in_executor(None, self.close, timeout)

    def stats(self) -> TrackerStats:
        """Counters since this process (or, after ``fork()``, this child) started tracking."""
        return self._outbox.stats()

    def _reinit_in_child(self) -> None:
        """After ``fork()``: a producer, a spool and counters of the child's own."""
        forking.abandon(self._producer)  # the parent's queued records are the parent's
        self._outbox.spool.reopen_in_child()
        self._outbox.reset_counters()
        self._ratelog.reopen_in_child()
        self._close_lock = threading.Lock()
        self._fatal = None
        if not self._closed:
            self._start()

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _warn_of_unkeyed_segments(spool_dir: Path) -> None:
    """Segments at the root of the default spool were written before the default was keyed
    by destination: nothing says where they belong, so none is adopted; say where they are."""
    legacy = default_spool_dir()
    try:
        count = sum(1 for _ in legacy.glob("*.seg"))
    except OSError:
        return
    if count:
        log.warning(
            "%d spooled segment(s) in %s have no destination; move those of this service's "
            "topic and cluster into %s to have them re-sent",
            count,
            legacy,
            spool_dir,
        )
