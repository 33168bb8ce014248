"""Adding up what an export read, kept and left out (pure)."""

from __future__ import annotations

from collections import Counter

from sinks.export.selection import Outcome
from sinks.export.shaping import Counts


class Tally:
    def __init__(self) -> None:
        self.outcomes: Counter[Outcome] = Counter()
        self.versions: Counter[tuple[str, int]] = Counter()
        self.read_by_partition: Counter[int] = Counter()

    def add(self, partition: int, counts: Counts) -> None:
        self.read_by_partition[partition] += counts.read
        self.outcomes.update(counts.outcomes)
        self.versions.update(counts.versions)

    @property
    def total_read(self) -> int:
        return sum(self.read_by_partition.values())

    @property
    def exported(self) -> int:
        return self.outcomes[Outcome.EXPORTED]

    def counts_by_type(self) -> dict[str, int]:
        by_type: Counter[str] = Counter()
        for (event_type, _version), count in self.versions.items():
            by_type[event_type] += count
        return dict(sorted(by_type.items()))

    def schema_versions(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for (event_type, version), count in sorted(self.versions.items()):
            out.setdefault(event_type, {})[str(version)] = count
        return out
