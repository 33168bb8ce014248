"""Export the event log into datasets (Parquet, JSONL) with a manifest; see ``run_export``."""

from eventlog.errors import ExportStalled, InvalidRange, RecordsGone, TimeLookupFailed, TopicMissing
from eventlog.ranges import LogRange
from sinks.export.api import export, load_erased
from sinks.export.config import ExportConfig, ExportRequest, Filters
from sinks.export.errors import DatasetExists, ExportError, PseudonymKeyMissing, RangeUnsettled
from sinks.export.manifest import Manifest, load
from sinks.export.run import run_export

__all__ = [
    "DatasetExists",
    "ExportConfig",
    "ExportError",
    "ExportRequest",
    "ExportStalled",
    "Filters",
    "InvalidRange",
    "LogRange",
    "Manifest",
    "PseudonymKeyMissing",
    "RangeUnsettled",
    "RecordsGone",
    "TimeLookupFailed",
    "TopicMissing",
    "export",
    "load",
    "load_erased",
    "run_export",
]
