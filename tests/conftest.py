"""Settings shared by every test."""

from hypothesis import settings

# Property tests run on shared 2-core machines next to Kafka and Postgres: an example that takes
# longer than hypothesis's default 200 ms deadline there is load, not a bug.
# derandomize: every run draws the same examples (a fixed seed), so CI is deterministic.
settings.register_profile("brainstream", deadline=None, derandomize=True)
settings.load_profile("brainstream")
