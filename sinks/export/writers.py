"""What the dataset formats have in common: write batches of rows, then close."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from sinks.export.rows import ExportRow


class DataWriter(Protocol):
    path: Path
    """The data file being written (inside the dataset's partial directory)."""

    def write(self, rows: Sequence[ExportRow]) -> None: ...

    def close(self) -> None:
        """Flush everything and close the file (it is complete on return)."""
        ...

    def abort(self) -> None:
        """Release the file without completing it."""
        ...
