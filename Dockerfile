# The brainstream CLI (SDK demo producer, sink, worker). Kafka and Postgres run as their own images.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY producers ./producers
COPY streams ./streams
COPY sinks ./sinks
COPY brainstream ./brainstream
RUN pip install --no-cache-dir ".[all]"
# nobody's HOME is /nonexistent: the SDK's spool (undelivered events) gets a directory of its
# own, owned by nobody; compose mounts a volume on it so spooled events survive a restart.
ENV BRAINSTREAM_SDK_SPOOL_DIR=/var/lib/brainstream/spool
RUN mkdir -p /var/lib/brainstream/spool && chown -R nobody:nogroup /var/lib/brainstream
VOLUME /var/lib/brainstream/spool
USER nobody
ENTRYPOINT []
CMD ["brainstream", "--help"]
