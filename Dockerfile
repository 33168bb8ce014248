# The brainstream CLI (SDK demo producer, sink, worker). Kafka and Postgres run as their own images.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY producers ./producers
COPY streams ./streams
COPY sinks ./sinks
COPY brainstream ./brainstream
RUN pip install --no-cache-dir .
USER nobody
ENTRYPOINT []
CMD ["brainstream", "--help"]
