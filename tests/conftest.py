"""Settings shared by every test."""

from hypothesis import settings

# Property tests run on shared 2-core machines next to Kafka and Postgres: an example that takes
# longer than hypothesis's default 200 ms deadline there is load, not a bug.
settings.register_profile("brainstream", deadline=None)
settings.load_profile("brainstream")
