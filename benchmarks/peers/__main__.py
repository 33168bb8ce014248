"""``python benchmarks/peers --bootstrap HOST:PORT --topic NAME --events N``: run the peers of the
aggregate worker on a pre-filled topic and print their events/s (see ``peers/__init__.py``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from peers import DEFAULT_WORKDIR, PEERS, run_peers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers")
    parser.add_argument("--topic", required=True, help="pre-filled brainstream.events-format topic")
    parser.add_argument("--events", type=int, required=True, help="events each peer counts")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--peers", default=",".join(PEERS), help="comma-separated: faust,quix")
    args = parser.parse_args()
    peers = [p for p in args.peers.split(",") if p]
    figures = run_peers(args.bootstrap, args.topic, args.events, args.workdir, peers=peers)
    rates = ", ".join(f"{p} {figures[f'{p}_events_per_s']:.0f} ev/s" for p in peers)
    print(f"peers over {args.events} events of {args.topic}: {rates}; counts checked")


if __name__ == "__main__":
    main()
