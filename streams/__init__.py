"""The aggregate worker: a Faust agent folds the sink's accepted stream
(``brainstream.events.accepted``) into fenced Postgres aggregate tables.

Pure parts (``buckets``, ``fold``) know nothing of Kafka or Postgres; ``writer`` applies one
partition's deltas and moves its offset fence in one transaction; ``processor`` applies a take
of accepted records, partitions in parallel; ``app`` is the faust-streaming application and
``web`` its HTTP views; ``queries``, ``reference`` and ``erasure`` serve readers, the reference
recomputation and GDPR erasure.
"""
