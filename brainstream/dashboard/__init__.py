"""The live dashboard: a small Starlette app over the aggregate tables, the raw table and the
pipeline's health, with its own ``/metrics``. Start it with ``brainstream dashboard``."""

from brainstream.dashboard.app import DashboardConfig, create_app

__all__ = ["DashboardConfig", "create_app"]
