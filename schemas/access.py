"""Who may read personal data over HTTP: one bearer token, and where a server may listen.

Every brainstream HTTP server (the dashboard, the worker's web pages, the export API, the
sink's and the SDK's ``/metrics``) binds ``127.0.0.1`` unless a host is configured. Endpoints
that return or write per-user data (the dashboard's user lookup, the worker's
``/aggregates/users/{id}``, the export API) answer ``401`` unless the request carries
``Authorization: Bearer <token>`` with the configured ``BRAINSTREAM_API_TOKEN``; without a
token they are served on a loopback address only, and a server bound beyond loopback without
one refuses to start (:func:`require_token_beyond_loopback`). ``/metrics`` and ``/health``
stay open: they carry counts, never a user.

The token is passed in by the composition root (``brainstream/``); this module only compares.
"""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass

from pydantic import SecretStr

from schemas.errors import BrainstreamError

__all__ = [
    "TOKEN_SETTING",
    "ExposedWithoutToken",
    "Refusal",
    "authorized",
    "is_loopback",
    "refusal",
    "require_token_beyond_loopback",
]

TOKEN_SETTING = "BRAINSTREAM_API_TOKEN"
"""The environment variable holding the shared bearer token."""

LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost"})


class ExposedWithoutToken(BrainstreamError, RuntimeError):
    """A server holding per-user data was asked to listen beyond loopback with no token."""

    def __init__(self, server: str, host: str) -> None:
        super().__init__(
            f"{server}: refusing to listen on {host!r} (beyond loopback) without a token: "
            f"set {TOKEN_SETTING}, or listen on 127.0.0.1"
        )
        self.server, self.host = server, host


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) accepts connections from this machine
    only. ``0.0.0.0``, ``::``, ``""`` and any other name or address count as beyond."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback  # ::ffff:127.0.0.1, as the JVM reports it
    return address.is_loopback


def require_token_beyond_loopback(server: str, host: str, token: SecretStr | None) -> None:
    """Raise :class:`ExposedWithoutToken` when ``host`` is beyond loopback and no (non-empty)
    token is configured."""
    if not is_loopback(host) and not _value(token):
        raise ExposedWithoutToken(server, host)


def authorized(header: str | None, token: SecretStr | None) -> bool:
    """Whether a request whose ``Authorization`` header is ``header`` may read per-user data.

    With no token configured the server runs on loopback (see
    :func:`require_token_beyond_loopback`) and every local request is let in. With one, the
    header must be ``Bearer <token>`` (scheme case-insensitive), compared in constant time."""
    expected = _value(token)
    if not expected:
        return True
    if header is None:
        return False
    scheme, _, presented = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(presented.strip().encode(), expected.encode())


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request is refused per-user data: the ``401`` body's message and the
    ``WWW-Authenticate`` challenge (RFC 6750 section 3: ``invalid_token`` when a token was
    presented and is wrong, no error code when none was)."""

    message: str
    challenge: str


_MISSING = Refusal("a bearer token is required for per-user data", 'Bearer realm="brainstream"')
_INVALID = Refusal(
    "the bearer token is not valid for this server",
    'Bearer realm="brainstream", error="invalid_token"',
)


def refusal(header: str | None, token: SecretStr | None) -> Refusal | None:
    """``None`` when :func:`authorized`, else why not: the one check every server's per-user
    endpoints call, so each answers a missing and a wrong token alike."""
    if authorized(header, token):
        return None
    scheme, _, presented = (header or "").strip().partition(" ")
    return _INVALID if scheme.lower() == "bearer" and presented.strip() else _MISSING


def _value(token: SecretStr | None) -> str:
    return token.get_secret_value() if token is not None else ""
