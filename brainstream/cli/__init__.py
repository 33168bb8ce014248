"""The ``brainstream`` command. Each concern registers its commands from its own module.

Conventions of every command: ``--version``; ``--log-level`` and ``--log-format json`` (before
the command: ``brainstream --log-format json sink``); settings from the environment and a
``.env`` file in the working directory; an error the operator can fix (a broker or database
that cannot be reached, wrong credentials, an invalid setting) is one line on stderr naming
the setting, exit code 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import sys
from importlib.metadata import version

import typer

from brainstream import logs
from brainstream.cli import core, errors, export, ops, pipeline, produce, sink, worker

app = typer.Typer(
    name="brainstream",
    help="Event-sourced analytics pipeline: SDK -> Kafka -> aggregates + Postgres.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)

for module in (core, produce, sink, worker, export, pipeline, ops):
    module.register(app)

_debug = False


def _version(value: bool) -> None:
    if value:
        typer.echo(f"brainstream {version('brainstream')}")
        raise typer.Exit()


@app.callback()
def _options(
    _version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks instead of one line."),
    log_level: str | None = typer.Option(
        None,
        "--log-level",
        help="DEBUG, INFO, WARNING, ERROR or CRITICAL (default INFO; the worker's default is "
        "BRAINSTREAM_WORKER_LOG_LEVEL).",
        case_sensitive=False,
    ),
    log_format: str = typer.Option(
        "text", "--log-format", help="text or json (one object a line)."
    ),
) -> None:
    """Event-sourced analytics pipeline: SDK -> Kafka -> aggregates + Postgres."""
    global _debug
    _debug = debug
    if log_level is not None and log_level.upper() not in logs.LEVELS:
        raise typer.BadParameter(f"one of {', '.join(logs.LEVELS)}", param_hint="--log-level")
    if log_format not in ("text", "json"):
        raise typer.BadParameter("text or json", param_hint="--log-format")
    logs.configure(log_level or "INFO", "json" if log_format == "json" else "text")


def main() -> None:
    logs.configure()
    try:
        app(standalone_mode=True)
    except SystemExit:
        raise
    except BaseException as exc:
        line = errors.one_line(exc)
        if line is None or _debug or "--debug" in sys.argv:
            raise
        typer.echo(f"error: {line}", err=True)
        sys.exit(2)
