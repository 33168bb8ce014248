"""The aggregate workers: Faust agents fold the event log into fenced Postgres aggregates.

Pure parts (``buckets``, ``fold``, ``records``) know nothing of Kafka or Postgres; ``writer``
applies one partition's deltas and moves its offset fence in one transaction; ``app`` is the
faust-streaming application; ``queries``, ``rebuild`` and ``erasure`` serve readers, the
reference recomputation and GDPR erasure.
"""
