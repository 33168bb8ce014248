"""Event types contributed by services, registered through the ``brainstream.event_types``
entry-point group (see ``pyproject.toml``)."""
