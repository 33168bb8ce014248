"""Reading and writing the Kafka log: the layer ``producers``, ``streams`` and ``sinks`` share.

It imports only :mod:`schemas` of ours. Modules (import the one you need; this package imports
none of them, so the SDK's light install loads only what it uses):

- :mod:`eventlog.clients`: the librdkafka configuration of every consumer and producer;
- :mod:`eventlog.offsets`: offset bookkeeping of consumed batches, fatal client errors, the
  in-memory offset fence of a replay;
- :mod:`eventlog.backoff`: exponential backoff with jitter;
- :mod:`eventlog.ranges`: bounded slices of a topic (:class:`~eventlog.ranges.LogRange`,
  per-partition ``[start, end)``);
- :mod:`eventlog.reader`: :class:`~eventlog.reader.LogReader`, bounded reads with an assigned
  consumer (export, replay, rebuild);
- :mod:`eventlog.errors`: what reading the log can raise;
- :mod:`eventlog.local`: an in-memory broker with the client surface the sink uses, for unit
  tests of consume loops (the same contract suite also runs on the real broker);
- :mod:`eventlog.db` and :mod:`eventlog.fence` (need psycopg): the typed ``Connection``, the
  erased-user lookup, and the offset-fence SQL of a projection (``stream_offsets``).
"""
