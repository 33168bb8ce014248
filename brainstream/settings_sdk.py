"""``BRAINSTREAM_SDK_*``: the SDK's settings (defined in :mod:`producers.settings`)."""

from __future__ import annotations

from producers.settings import SdkSettings

__all__ = ["SdkSettings"]
