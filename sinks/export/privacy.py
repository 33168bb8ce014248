"""Pseudonymous user ids: HMAC-SHA256 of the user id under a secret key.

The same key maps a user to the same token in every row of a dataset (and in every dataset
made with that key, so datasets can be joined); without the key a token cannot be linked back
to the user id, even by hashing candidate ids. Rotate the key to make new datasets unlinkable.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache

from pydantic import SecretStr

_FINGERPRINT_MESSAGE = b"brainstream.export.pseudonym-key-fingerprint"


class Pseudonymiser:
    def __init__(self, key: SecretStr, *, cache_size: int = 65_536) -> None:
        """Raises ``ValueError`` for an empty key."""
        secret = key.get_secret_value().encode()
        if not secret:
            raise ValueError("the pseudonymisation key is empty")
        self._key = secret
        self.key = key
        self.pseudonym = lru_cache(maxsize=cache_size)(self._compute)
        self.fingerprint = hmac.new(secret, _FINGERPRINT_MESSAGE, hashlib.sha256).hexdigest()[:16]
        """Names the key in manifests (so readers know which datasets join) without leaking it."""

    def _compute(self, user_id: str) -> str:
        return hmac.new(self._key, user_id.encode(), hashlib.sha256).hexdigest()
