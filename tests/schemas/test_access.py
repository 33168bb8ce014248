"""The bearer-token check and the loopback rule shared by every HTTP server."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from schemas.access import (
    ExposedWithoutToken,
    authorized,
    is_loopback,
    refusal,
    require_token_beyond_loopback,
)

TOKEN = SecretStr("s3cret-token")


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.0.0.53", "::1", "[::1]", "::ffff:127.0.0.1", "localhost"]
)
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize(
    "host", ["0.0.0.0", "::", "", "10.0.0.5", "::ffff:10.0.0.5", "example.org", "dashboard"]
)
def test_hosts_beyond_loopback(host: str) -> None:
    assert not is_loopback(host)


def test_a_token_is_required_only_beyond_loopback() -> None:
    require_token_beyond_loopback("dashboard", "127.0.0.1", None)
    require_token_beyond_loopback("dashboard", "0.0.0.0", TOKEN)
    for token in (None, SecretStr("")):
        with pytest.raises(ExposedWithoutToken, match="BRAINSTREAM_API_TOKEN") as caught:
            require_token_beyond_loopback("dashboard", "0.0.0.0", token)
        assert "dashboard" in str(caught.value) and "'0.0.0.0'" in str(caught.value)


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        ("Bearer s3cret-token", True),
        ("bearer s3cret-token", True),
        ("Bearer  s3cret-token ", True),
        (None, False),
        ("", False),
        ("Bearer", False),
        ("Bearer wrong", False),
        ("Bearer s3cret-token-and-more", False),
        ("Basic s3cret-token", False),
        ("s3cret-token", False),
    ],
)
def test_authorized_compares_the_bearer_token(header: str | None, ok: bool) -> None:
    assert authorized(header, TOKEN) is ok


def test_without_a_token_every_request_is_let_in() -> None:
    assert authorized(None, None)
    assert authorized("Bearer anything", SecretStr(""))


@pytest.mark.parametrize(
    ("header", "why"),
    [
        ("Bearer s3cret-token", None),
        (None, "missing"),
        ("", "missing"),
        ("Bearer", "missing"),
        ("Basic s3cret-token", "missing"),
        ("Bearer wrong", "invalid"),
        ("bearer s3cret-token-and-more", "invalid"),
    ],
)
def test_a_refusal_tells_a_wrong_token_from_a_missing_one(header: str | None, why: str) -> None:
    refused = refusal(header, TOKEN)
    if why is None:
        assert refused is None
    elif why == "missing":
        assert refused is not None and "is required" in refused.message
        assert refused.challenge == 'Bearer realm="brainstream"'
    else:
        assert refused is not None and refused.message.endswith("is not valid for this server")
        assert refused.challenge == 'Bearer realm="brainstream", error="invalid_token"'
