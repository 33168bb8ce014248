"""The spool: records survive, the cap drops oldest-first, orphans are adopted, not stolen."""

from __future__ import annotations

from pathlib import Path

from producers.spool import Spool, read_records

HEADERS = [("bs.type", b"page_view"), ("bs.session_id", b"")]


def fill(spool: Spool, n: int, size: int = 100) -> None:
    for i in range(n):
        spool.append(f"u-{i}".encode(), b"%08d" % i + b"x" * size, HEADERS)


def all_values(spool: Spool) -> list[bytes]:
    values = []
    while (seg := spool.take()) is not None:
        values += [value for _key, value, _headers in read_records(seg.path)]
        spool.release(seg)
    return values


def test_records_round_trip_in_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1 << 20)
    fill(spool, 50)
    spool.append(None, b"no-key", [])
    assert spool.waiting == 51
    seg = spool.take()
    assert seg is not None
    records = list(read_records(seg.path))
    assert records[0] == (b"u-0", b"00000000" + b"x" * 100, HEADERS)
    assert records[-1] == (None, b"no-key", [])
    assert spool.waiting == 0  # taken records are not waiting any more
    spool.release(seg)
    assert not seg.path.exists()


def test_torn_tail_is_ignored(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1 << 20)
    fill(spool, 3)
    seg = spool.take()
    assert seg is not None
    with seg.path.open("ab") as f:
        f.write(b"\x00\x00\x00\x05\x00\x00")  # a crash in the middle of a write
    assert len(list(read_records(seg.path))) == 3


def test_cap_drops_oldest_segments_and_counts_them(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 64 * 1024)  # segments of 64 KiB: one segment kept
    dropped = 0
    for i in range(2000):
        dropped += spool.append(b"k", b"%08d" % i + b"x" * 100, [])
    waiting = spool.waiting
    assert dropped > 0 and dropped + waiting == 2000
    values = all_values(spool)
    assert values[-1].startswith(b"00001999")  # the newest survive
    assert int(values[0][:8]) == dropped  # exactly the oldest ones went


def test_taken_segments_are_never_dropped(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 64 * 1024)
    fill(spool, 100)
    seg = spool.take()
    assert seg is not None
    for _ in range(2000):
        spool.append(b"k", b"x" * 100, [])
    assert seg.path.exists() and seg.taken


def test_a_live_owner_keeps_its_segments(tmp_path: Path) -> None:
    owner = Spool(tmp_path, 1 << 20)
    fill(owner, 10)
    other = Spool(tmp_path, 1 << 20)
    assert other.adopt_orphans() == 0
    assert owner.waiting == 10


def test_segments_of_a_closed_spool_are_adopted_once(tmp_path: Path) -> None:
    gone = Spool(tmp_path, 1 << 20)
    fill(gone, 10)
    gone.close()
    first, second = Spool(tmp_path, 1 << 20), Spool(tmp_path, 1 << 20)
    assert first.adopt_orphans() == 10
    assert second.adopt_orphans() == 0
    assert [v[:8] for v in all_values(first)] == [b"%08d" % i for i in range(10)]
    assert not list(tmp_path.glob(f"{gone.token}.*"))


def test_empty_spool_leaves_nothing_behind(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1 << 20)
    fill(spool, 3)
    all_values(spool)
    spool.close()
    assert list(tmp_path.iterdir()) == []


def test_lock_files_of_idle_dead_processes_are_cleaned(tmp_path: Path) -> None:
    killed = Spool(tmp_path, 1 << 20)
    killed.close()  # as if killed: the lock file stays, its lock is gone
    (tmp_path / f"{killed.token}.lock").touch()
    assert Spool(tmp_path, 1 << 20).adopt_orphans() == 0
    assert not (tmp_path / f"{killed.token}.lock").exists()
