"""A dataset directory that appears complete or not at all.

Everything is written into ``<output_dir>/<name>.partial/``; the manifest is written last and
the directory is then renamed to ``<output_dir>/<name>/`` in one atomic step. So a dataset is
complete if and only if ``<name>/manifest.json`` exists: a crash, Ctrl-C or SIGKILL leaves at
most a ``.partial`` directory (removed by the next export of that name).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from sinks.export.errors import DatasetExists
from sinks.export.manifest import MANIFEST_FILE

PARTIAL_SUFFIX = ".partial"


class DatasetDir:
    def __init__(self, output_dir: Path, name: str, *, overwrite: bool = False) -> None:
        self.final = output_dir / name
        self.partial = output_dir / f"{name}{PARTIAL_SUFFIX}"
        self._replaced = output_dir / f"{name}.replaced{PARTIAL_SUFFIX}"
        self._overwrite = overwrite

    def open(self) -> None:
        """Start a fresh partial directory beside the final one.

        Raises:
            DatasetExists: the dataset is already published and overwriting was not asked.
        """
        if self.final.exists() and not self._overwrite:
            raise DatasetExists(self.final)
        self.final.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.partial, ignore_errors=True)
        self.partial.mkdir()

    def path(self, file_name: str) -> Path:
        return self.partial / file_name

    def commit(self, manifest_json: bytes) -> Path:
        """Write the manifest, make everything durable, then publish the directory at once."""
        for child in self.partial.iterdir():
            _fsync(child)
        tmp = self.partial / f"{MANIFEST_FILE}{PARTIAL_SUFFIX}"
        tmp.write_bytes(manifest_json)
        _fsync(tmp)
        tmp.rename(self.partial / MANIFEST_FILE)
        _fsync(self.partial)
        if self.final.exists():  # only with overwrite
            shutil.rmtree(self._replaced, ignore_errors=True)
            self.final.rename(self._replaced)
        self.partial.rename(self.final)
        _fsync(self.final.parent)
        shutil.rmtree(self._replaced, ignore_errors=True)
        return self.final

    def discard(self) -> None:
        shutil.rmtree(self.partial, ignore_errors=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
