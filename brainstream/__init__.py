"""brainstream's composition root: settings, the CLI and local development services."""

__version__ = "0.1.0"
