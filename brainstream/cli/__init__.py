"""The ``brainstream`` command. Each concern registers its commands from its own module."""

from __future__ import annotations

import logging

import typer

from brainstream.cli import core, export, ops, pipeline, produce, sink, worker

app = typer.Typer(
    name="brainstream",
    help="Event-sourced analytics pipeline: SDK -> Kafka -> aggregates + Postgres.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)

for module in (core, produce, sink, worker, export, pipeline, ops):
    module.register(app)


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app()
