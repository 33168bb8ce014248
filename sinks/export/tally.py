"""Counting what an export read, kept and left out (pure)."""

from __future__ import annotations

from collections import Counter, defaultdict

from sinks.export.selection import Outcome


class Tally:
    def __init__(self) -> None:
        self.outcomes: Counter[Outcome] = Counter()
        self.by_type: Counter[str] = Counter()
        self.versions: defaultdict[str, Counter[int]] = defaultdict(Counter)
        self.read_by_partition: Counter[int] = Counter()

    def read(self, partition: int, count: int) -> None:
        self.read_by_partition[partition] += count

    def left_out(self, outcome: Outcome) -> None:
        self.outcomes[outcome] += 1

    def exported(self, event_type: str, schema_version: int) -> None:
        self.outcomes[Outcome.EXPORTED] += 1
        self.by_type[event_type] += 1
        self.versions[event_type][schema_version] += 1

    @property
    def total_read(self) -> int:
        return sum(self.read_by_partition.values())

    def counts_by_type(self) -> dict[str, int]:
        return dict(sorted(self.by_type.items()))

    def schema_versions(self) -> dict[str, dict[str, int]]:
        return {
            t: {str(v): n for v, n in sorted(counts.items())}
            for t, counts in sorted(self.versions.items())
        }
