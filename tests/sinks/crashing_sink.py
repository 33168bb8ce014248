"""The sink CLI with a fault injected: SIGKILL right after the database commit of batch N.

``python -m tests.sinks.crashing_sink N sink …``. A test-only hook lives here, not in the
sink's settings: production code has no switch that kills the process.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from sinks import consumer


def install(after_batches: int) -> None:
    """Wrap the writer's ``write_batch``: the ``after_batches``-th commit is the last."""
    write_batch = consumer.write_batch
    done = 0

    def write_then_die(*args: Any, **kwargs: Any) -> Any:
        nonlocal done
        result = write_batch(*args, **kwargs)
        done += 1
        if done == after_batches:  # committed in Postgres, offset not yet committed in Kafka
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    consumer.write_batch = write_then_die  # type: ignore[assignment]


if __name__ == "__main__":
    install(int(sys.argv.pop(1)))
    from brainstream.cli import main

    sys.argv[0] = "brainstream"
    main()
