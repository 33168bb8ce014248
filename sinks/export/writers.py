"""What the dataset formats have in common: write shaped batches, then close."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from sinks.export.shaping import Shaped


class DataWriter(Protocol):
    path: Path
    """The data file being written (inside the dataset's partial directory)."""

    def write(self, shaped: Shaped) -> None: ...

    def close(self) -> None:
        """Flush everything and close the file (it is complete on return)."""
        ...

    def abort(self) -> None:
        """Release the file without completing it."""
        ...
