"""The base of every ``BRAINSTREAM_*`` settings model: renamed variables keep working.

A variable that was renamed is listed in the model's ``renamed`` (old name -> field). When the
old name is set it is still read, unless the new one is set too, and a ``DeprecationWarning``
names the variable to use instead. Only the process environment is consulted for old names.
"""

from __future__ import annotations

import os
import warnings
from typing import Any, ClassVar

from pydantic_settings import BaseSettings


def deprecated(old: str, new: str) -> None:
    """Warn that ``old`` (a variable name or a value) is deprecated in favour of ``new``."""
    warnings.warn(f"{old} is deprecated: use {new}", DeprecationWarning, stacklevel=3)


class EnvSettings(BaseSettings):
    """``BaseSettings`` that also reads the old names of renamed variables, with a warning."""

    renamed: ClassVar[dict[str, str]] = {}
    """Old variable name -> the field it now sets (under the model's ``env_prefix``)."""

    def __init__(self, **values: Any) -> None:
        prefix = str(self.model_config.get("env_prefix", ""))
        for old, field in self.renamed.items():
            if old not in os.environ:
                continue
            new = f"{prefix}{field}".upper()
            deprecated(old, new)
            if field not in values and new not in os.environ:
                values[field] = os.environ[old]
        super().__init__(**values)
