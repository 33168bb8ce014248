"""``brainstream dev …``, ``db …``, ``topics …`` and ``schemas …``: set-up commands."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from brainstream.settings import Settings
from schemas.config import check_credentials

console = Console()
dev_app = typer.Typer(help="Local Kafka (KRaft, JVM) and Postgres for development and tests.")
db_app = typer.Typer(help="Postgres schema.")
topics_app = typer.Typer(help="Kafka topics.")
schemas_app = typer.Typer(help="Event contract.")


def register(app: typer.Typer) -> None:
    app.add_typer(dev_app, name="dev")
    app.add_typer(db_app, name="db")
    app.add_typer(topics_app, name="topics")
    app.add_typer(schemas_app, name="schemas")


def env_lines(kafka_bootstrap: str, postgres_dsn: str) -> list[str]:
    return [
        f"export BRAINSTREAM_KAFKA_BOOTSTRAP_SERVERS={kafka_bootstrap}",
        f"export BRAINSTREAM_POSTGRES_DSN={postgres_dsn}",
    ]


@dev_app.command("up")
def dev_up(
    dev_dir: Path | None = typer.Option(None, help="Data dir (default ./.brainstream)."),
    env_file: Path | None = typer.Option(None, help="Also write the settings to this file."),
    brokers: int | None = typer.Option(
        None, help="Kafka nodes of a new dev dir: 1 (default) or 3 (replication factor 3)."
    ),
    secure: bool | None = typer.Option(
        None,
        "--secure/--plaintext",
        help="A new dev dir's profile: TLS + SCRAM-SHA-512 + ACLs, least-privilege roles.",
    ),
) -> None:
    """Start Kafka and Postgres (idempotent), create topics, run migrations, print settings."""
    from brainstream import dev
    from brainstream.dev import secure as profile
    from brainstream.migrate import migrate
    from brainstream.topic_admin import ensure_topics

    if brokers not in (None, 1, 3):
        raise typer.BadParameter("1 or 3", param_hint="--brokers")
    try:
        services = dev.up(
            dev_dir,
            log=lambda msg: console.print(f"[dim]{msg}[/dim]"),
            brokers=brokers,
            secure_profile=secure,
        )
    except dev.ShapeMismatch as exc:
        raise typer.BadParameter(str(exc), param_hint="--brokers/--secure") from None
    settings = Settings()
    settings.kafka.bootstrap_servers = services.kafka_bootstrap
    if services.secure:  # the operator's principal creates the topics
        settings.kafka = profile.kafka_settings(
            services.dev_dir, services.kafka_bootstrap, profile.ADMIN
        )
    created = ensure_topics(settings.kafka, settings.topics)
    applied = migrate(services.postgres_dsn, settings.postgres.db_schema)
    console.print(f"topics created: {created or 'none (all present)'}")
    console.print(f"migrations applied: {[m.version for m in applied] or 'none (up to date)'}")
    if services.secure:
        console.print("per-principal settings (secrets inside, mode 0600):")
        for principal in (profile.ADMIN, *profile.PRINCIPALS):
            typer.echo(f"  {principal}: set -a; . {profile.env_file(services.dev_dir, principal)}")
        return
    lines = env_lines(services.kafka_bootstrap, services.postgres_dsn)
    if env_file is not None:
        env_file.write_text("\n".join(lines) + "\n")
    for line in lines:
        typer.echo(line)


@dev_app.command("down")
def dev_down(dev_dir: Path | None = typer.Option(None)) -> None:
    """Stop the local Kafka and Postgres."""
    from brainstream import dev

    dev.down(dev_dir, log=lambda msg: console.print(f"[dim]{msg}[/dim]"))


@dev_app.command("status")
def dev_status(dev_dir: Path | None = typer.Option(None)) -> None:
    """Show whether the local services run; exits 1 when one does not."""
    from brainstream import dev

    state = dev.status(dev_dir)
    healthy = True
    for name, info in state.items():
        nodes = info.pop("nodes", []) if isinstance(info, dict) else []
        console.print(f"{name}: {info}")
        for node in nodes:
            console.print(f"  node {node['node_id']}: {node}")
        if isinstance(info, dict) and not info.get("running"):
            healthy = False
    raise typer.Exit(0 if healthy else 1)


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply pending migrations to BRAINSTREAM_POSTGRES_DSN (idempotent)."""
    from brainstream.migrate import migrate

    settings = Settings()
    applied = migrate(settings.postgres.server_dsn, settings.postgres.db_schema)
    for m in applied:
        console.print(f"applied {m.version:04d}_{m.name}")
    if not applied:
        console.print("database is up to date")


@topics_app.command("create")
def topics_create(
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan, change nothing."),
    timeout: float = typer.Option(30.0, help="Seconds to wait for the cluster."),
) -> None:
    """Create brainstream's topics on BRAINSTREAM_KAFKA_BOOTSTRAP_SERVERS and reconcile the
    existing ones: changed retention/segment settings are altered; more partitions than exist
    are refused (exit 1: it would move users to other partitions). Idempotent."""
    from brainstream.topic_admin import apply_topics, plan_topics

    settings = Settings()
    check_credentials(settings.kafka, timeout)
    changes = plan_topics(settings.kafka, settings.topics, timeout)
    for change in changes:
        typer.echo(
            ("would " if dry_run and change.kind in ("create", "alter") else "") + str(change)
        )
    if not changes:
        typer.echo("topics up to date")
    if not dry_run:
        apply_topics(settings.kafka, settings.topics, changes, timeout)
    if any(c.kind == "refuse" for c in changes):
        raise typer.Exit(1)


@schemas_app.command("export")
def schemas_export(
    directory: Path | None = typer.Argument(None),
    force: bool = typer.Option(
        False, "--force", help="Overwrite published versions even when incompatible."
    ),
) -> None:
    """Write the JSON Schema of every registered type and version (default: schemas/json/)."""
    from schemas.compat import GateUnavailable, IncompatibleSchema
    from schemas.jsonschema import JSON_DIR, export

    try:
        written = export(directory or JSON_DIR, force=force)
    except GateUnavailable as exc:
        console.print(f"error: {exc} (or --force)", markup=False, highlight=False)
        raise typer.Exit(2) from None
    except IncompatibleSchema as exc:
        for problem in exc.problems:
            console.print(f"[red]incompatible[/red] {problem}", markup=True, highlight=False)
        raise typer.Exit(1) from None
    for path in written:
        console.print(str(path))


@schemas_app.command("check")
def schemas_check(directory: Path | None = typer.Argument(None)) -> None:
    """Fail when a registered version changed incompatibly from its published JSON Schema
    (default: schemas/json/), or a step between versions has no upcaster."""
    from schemas.compat import GateUnavailable, check
    from schemas.jsonschema import JSON_DIR

    try:
        problems = check(directory or JSON_DIR)
    except GateUnavailable as exc:
        console.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    for problem in problems:
        console.print(f"incompatible: {problem}", markup=False, highlight=False)
    if problems:
        raise typer.Exit(1)
    console.print("schemas: every published version is still accepted", highlight=False)
