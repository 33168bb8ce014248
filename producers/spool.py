"""A bounded, file-backed queue of undelivered records, one per process.

Layout in the spool dir: ``<token>.lock`` (flock'ed by its live owner for its whole life) and
``<token>.<seq>.seg`` segments of length-prefixed records, appended with one ``write()`` each
(a process crash loses no record that was written; a torn tail is ignored on read). Segments
of a token whose lock is free belong to a process that is gone: the next process adopts them
by renaming them into its own token. Over ``max_bytes`` the oldest segment is dropped and
its records counted. After ``fork()`` the child calls :meth:`Spool.reopen_in_child`.
"""

from __future__ import annotations

import fcntl
import os
import struct
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

Record = tuple[bytes | None, bytes, list[tuple[str, bytes]]]

_HEAD = struct.Struct(">IIH")
_HEADER = struct.Struct(">HI")
_MIN_SEGMENT = 64 * 1024
_MAX_SEGMENT = 4 * 1024 * 1024


@dataclass
class Segment:
    path: Path
    seq: int
    records: int = 0
    size: int = 0
    taken: bool = False
    """Being re-sent: not counted as waiting, never dropped."""


class Spool:
    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = min(_MAX_SEGMENT, max(_MIN_SEGMENT, max_bytes // 8))
        self._lock = threading.Lock()
        self._open()

    def _open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._segments: list[Segment] = []
        self._seq = 0
        self._fd: int | None = None
        self._lock_fd: int | None = os.open(self.directory / f"{self.token}.lock", _FLAGS, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)

    # --- writing -------------------------------------------------------------------------
    def append(self, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]) -> int:
        """Write one record; returns how many old records the size cap dropped to make room."""
        frame = encode_record(key, value, headers)
        with self._lock:
            dropped = self._make_room(len(frame))
            seg = self._active()
            os.write(self._fd, frame)  # type: ignore[arg-type]
            seg.records += 1
            seg.size += len(frame)
        return dropped

    def _active(self) -> Segment:
        seg = self._segments[-1] if self._fd is not None else None
        if seg is None or seg.size >= self.segment_bytes:
            self._rotate()
            seg = self._new_segment()
            self._fd = os.open(seg.path, _FLAGS | os.O_APPEND, 0o600)
        return seg

    def _new_segment(self) -> Segment:
        self._seq += 1
        seg = Segment(self.directory / f"{self.token}.{self._seq:08d}.seg", self._seq)
        self._segments.append(seg)
        return seg

    def _rotate(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _make_room(self, incoming: int) -> int:
        dropped = 0
        while sum(s.size for s in self._segments) + incoming > self.max_bytes:
            victim = next((s for s in self._segments if not s.taken), None)
            if victim is None:
                break
            if victim is self._segments[-1]:
                self._rotate()
            self._segments.remove(victim)
            victim.path.unlink(missing_ok=True)
            dropped += victim.records
        return dropped

    # --- re-sending ----------------------------------------------------------------------
    @property
    def waiting(self) -> int:
        """Records on disk that are not being re-sent."""
        with self._lock:
            return sum(s.records for s in self._segments if not s.taken)

    def take(self) -> Segment | None:
        """The oldest waiting segment (the active one is closed first), marked as taken."""
        with self._lock:
            seg = next((s for s in self._segments if not s.taken and s.records), None)
            if seg is None:
                return None
            if seg is self._segments[-1]:
                self._rotate()
            seg.taken = True
            return seg

    def release(self, seg: Segment) -> None:
        """Every record of ``seg`` is delivered or spooled again: delete it."""
        with self._lock:
            if seg in self._segments:
                self._segments.remove(seg)
            seg.path.unlink(missing_ok=True)

    def adopt_orphans(self) -> int:
        """Take over the segments of processes that are gone; returns their record count."""
        adopted = 0
        for token, paths in self._foreign_tokens().items():
            lock = self.directory / f"{token}.lock"
            fd = _try_lock(lock)
            if fd is False:
                continue  # its owner is alive
            try:
                for path in sorted(paths):
                    adopted += self._adopt(path)
                lock.unlink(missing_ok=True)
            finally:
                if fd is not None:
                    os.close(fd)
        return adopted

    def _foreign_tokens(self) -> dict[str, list[Path]]:
        """Other tokens and their segments (none for the lock file of a process killed idle)."""
        tokens: dict[str, list[Path]] = {}
        for path in (*self.directory.glob("*.lock"), *self.directory.glob("*.seg")):
            token = path.name.split(".", 1)[0]
            if token != self.token:
                paths = tokens.setdefault(token, [])
                if path.suffix == ".seg":
                    paths.append(path)
        return tokens

    def _adopt(self, path: Path) -> int:
        with self._lock:
            self._rotate()
            seg = self._new_segment()
            try:
                path.rename(seg.path)
            except FileNotFoundError:  # another process adopted it first
                self._segments.remove(seg)
                return 0
            for _ in read_records(seg.path):
                seg.records += 1
            seg.size = seg.path.stat().st_size
            return seg.records

    # --- lifecycle -----------------------------------------------------------------------
    def close(self) -> None:
        """Close the files; the segments stay for the next process. Lock released last."""
        with self._lock:
            self._rotate()
            for seg in [s for s in self._segments if s.records == 0 and not s.taken]:
                seg.path.unlink(missing_ok=True)
            if self._lock_fd is not None:
                if not self._segments:
                    (self.directory / f"{self.token}.lock").unlink(missing_ok=True)
                os.close(self._lock_fd)
                self._lock_fd = None

    def reopen_in_child(self) -> None:
        """After ``fork()``: drop the parent's descriptors and segments, start a new token."""
        for fd in (self._fd, self._lock_fd):
            if fd is not None:
                os.close(fd)  # the parent keeps its lock: flock belongs to its descriptor
        self._lock = threading.Lock()
        self._open()


_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC


def _try_lock(path: Path) -> int | bool | None:
    """An fd holding the lock, ``None`` if there is no lock file, ``False`` if it is held."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False
    return fd


def encode_record(key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]) -> bytes:
    parts = [_HEAD.pack(0xFFFFFFFF if key is None else len(key), len(value), len(headers))]
    if key is not None:
        parts.append(key)
    parts.append(value)
    for name, data in headers:
        raw = name.encode()
        parts += [_HEADER.pack(len(raw), len(data or b"")), raw, data or b""]
    return b"".join(parts)


def read_records(path: Path) -> Iterator[Record]:
    """Every complete record of a segment, in order; a torn tail is ignored."""
    data = path.read_bytes()
    pos = 0
    while pos + _HEAD.size <= len(data):
        try:
            record, pos = _decode_at(data, pos)
        except (struct.error, ValueError):
            return
        yield record


def _decode_at(data: bytes, pos: int) -> tuple[Record, int]:
    key_len, value_len, n_headers = _HEAD.unpack_from(data, pos)
    pos += _HEAD.size
    key = None
    if key_len != 0xFFFFFFFF:
        key, pos = _take(data, pos, key_len)
    value, pos = _take(data, pos, value_len)
    headers = []
    for _ in range(n_headers):
        name_len, data_len = _HEADER.unpack_from(data, pos)
        name, pos = _take(data, pos + _HEADER.size, name_len)
        body, pos = _take(data, pos, data_len)
        headers.append((name.decode(), body))
    return (key, value, headers), pos


def _take(data: bytes, pos: int, n: int) -> tuple[bytes, int]:
    if pos + n > len(data):
        raise ValueError("torn record")
    return data[pos : pos + n], pos + n
