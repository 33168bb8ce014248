"""The CLI side of :mod:`schemas.access`: a server refused beyond loopback is a usage error."""

from __future__ import annotations

import typer
from pydantic import SecretStr

from schemas.access import ExposedWithoutToken, require_token_beyond_loopback


def guard_listener(server: str, host: str, token: SecretStr | None) -> None:
    """Exit with a one-line usage error (exit 2) when ``server`` would serve per-user data
    beyond loopback without ``BRAINSTREAM_API_TOKEN``."""
    try:
        require_token_beyond_loopback(server, host, token)
    except ExposedWithoutToken as exc:
        raise typer.BadParameter(str(exc), param_hint="host") from None
