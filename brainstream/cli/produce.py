"""``brainstream produce``: demo traffic through the producer SDK, the way a service sends it."""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

if TYPE_CHECKING:
    from producers import Tracker, TrackerStats
    from producers.demo import DemoTraffic


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""

    @app.command()
    def produce(
        rate: float = typer.Option(200.0, min=1, help="Events per second."),
        users: int = typer.Option(100, min=1, help="Distinct simulated users."),
        duration: float = typer.Option(30.0, min=0.1, help="Seconds to run."),
        source: str = typer.Option("demo", help="Service name stamped on the events."),
        seed: int | None = typer.Option(None, help="Seed for a reproducible mix."),
        metrics_port: int | None = typer.Option(
            None,
            min=0,
            max=65_535,
            help="Serve the SDK's Prometheus /metrics (brainstream_sdk_*) on this port.",
        ),
        metrics_host: str = typer.Option(
            "127.0.0.1", help="Address the /metrics server binds (0.0.0.0: every interface)."
        ),
    ) -> None:
        """Send a realistic mix of every registered event type through the SDK."""
        # Imported here: the rest of the CLI works even where the SDK cannot be imported.
        from confluent_kafka import KafkaError, KafkaException

        from brainstream.settings import SdkSettings, Settings
        from brainstream.topic_admin import ensure_topics
        from producers import Tracker, TrackingError
        from producers.demo import DemoTraffic
        from schemas import REGISTRY
        from schemas.config import AUTHORIZATION_FAILED, KafkaAccessRefused, check_credentials

        console = Console(stderr=True)
        settings, sdk = Settings(), SdkSettings()
        if metrics_port is not None and not sdk.prometheus:
            raise typer.BadParameter(
                "BRAINSTREAM_SDK_PROMETHEUS is off: the SDK has no metrics to serve",
                param_hint="--metrics-port",
            )
        check_credentials(settings.kafka)
        try:  # a demo on a fresh broker just works
            ensure_topics(settings.kafka, settings.topics)
        except KafkaException as exc:
            # A least-privilege principal (the secure profile's sdk) sees only the events
            # topic and may create none: the operator made them; the SDK reports the rest.
            refused = (
                KafkaError.TOPIC_AUTHORIZATION_FAILED,
                KafkaError.CLUSTER_AUTHORIZATION_FAILED,
            )
            if exc.args[0].code() not in refused:
                raise
        problems: list[TrackingError] = []
        tracker = Tracker(
            settings.kafka,
            topic=settings.topics.events,
            config=sdk.tracker_config(source=source),
            on_error=problems.append,
        )
        traffic = DemoTraffic(REGISTRY.names(), users, random.Random(seed))
        if traffic.skipped:
            console.print(f"[yellow]no demo properties for: {', '.join(traffic.skipped)}")

        def refusal() -> KafkaAccessRefused | None:
            """The cluster's refusal of this principal's writes, if any: no demo traffic can
            get through it, so the command stops with its one line (events are spooled)."""
            for problem in problems:
                code = getattr(problem, "reason", "")
                if code in {KafkaError(c).name() for c in AUTHORIZATION_FAILED}:
                    return KafkaAccessRefused(
                        settings.kafka.sasl_username,
                        f"writing to topic {settings.topics.events!r}",
                        code,
                    )
            return tracker.refused

        with _metrics_server(metrics_port, metrics_host, console):
            try:
                sent = _run(tracker, traffic, rate, duration, console, refusal)
            finally:
                stats = tracker.close(sdk.close_timeout_seconds)
        if (denied := refusal()) is not None:
            raise denied
        console.print(_summary(stats, sent, len(problems)))
        if stats.unexplained:
            raise typer.Exit(1)


@contextlib.contextmanager
def _metrics_server(port: int | None, host: str, console: Console) -> Iterator[None]:
    """``/metrics`` of prometheus-client's default registry, where the SDK's collector is, and
    ``/health`` (:mod:`schemas.http`)."""
    if port is None:
        yield
        return
    from prometheus_client import REGISTRY

    from schemas.http import serve

    server = serve(REGISTRY, lambda: {"ok": True}, port, host, name="sdk-http")
    console.print(f"SDK metrics on http://{host}:{server.server_port}/metrics")
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


def _run(
    tracker: Tracker,
    traffic: DemoTraffic,
    rate: float,
    duration: float,
    con: Console,
    refusal: Callable[[], Exception | None],
) -> int:
    """Track ``rate`` events/s for ``duration`` s; returns how many, or stops early when
    ``refusal()`` names an error no traffic can get through."""
    total = int(rate * duration)
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}"))
    with Progress(*columns, TimeRemainingColumn(), console=con, transient=True) as progress:
        bar = progress.add_task("producing", total=total)
        start = time.monotonic()
        sent = 0
        while sent < total:
            due = min(total, int((time.monotonic() - start) * rate) + 1)
            while sent < due:
                type_name, user_id, props = traffic.next()
                tracker.track(type_name, user_id, properties=props)
                sent += 1
            s = tracker.stats()
            if refusal() is not None:
                break
            progress.update(bar, completed=sent, description=_line(s))
            time.sleep(min(0.05, max(0.0, start + sent / rate - time.monotonic())))
    return sent


def _line(s: TrackerStats) -> str:
    return f"delivered {s.delivered}  in flight {s.in_flight}  spooled {s.in_spool}"


def _summary(stats: TrackerStats, sent: int, problems: int) -> Table:
    table = Table(title=f"brainstream produce: {sent} events tracked", show_header=False)
    for name, value in stats.as_dict().items():
        table.add_row(name, str(value))
    table.add_row("problem reports", str(problems))
    return table
