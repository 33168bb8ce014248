"""Typed settings read from ``BRAINSTREAM_*`` environment variables (composition root only)."""

from __future__ import annotations

from functools import cached_property

from psycopg.conninfo import make_conninfo
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.config import KafkaSettings, TopicSettings


class PostgresSettings(BaseSettings):
    """``BRAINSTREAM_POSTGRES_*``."""

    model_config = SettingsConfigDict(
        env_prefix="BRAINSTREAM_POSTGRES_",
        env_file=".env",
        extra="ignore",
        populate_by_name=True,
    )

    dsn: SecretStr = SecretStr("postgresql://brainstream:brainstream@127.0.0.1:5432/brainstream")
    db_schema: str = Field(default="public", alias="BRAINSTREAM_POSTGRES_SCHEMA")
    """Schema (search_path) holding brainstream's tables; tests use one per test."""

    @property
    def server_dsn(self) -> str:
        """The DSN as configured (secret revealed), without brainstream's schema."""
        return self.dsn.get_secret_value()

    @cached_property
    def conninfo(self) -> str:
        """The DSN with ``search_path`` set to brainstream's schema: what every process uses."""
        return make_conninfo(self.server_dsn, options=f"-c search_path={self.db_schema}")


class Settings(BaseSettings):
    """Everything the CLI composes. Sub-models read their own prefixes."""

    model_config = SettingsConfigDict(env_prefix="BRAINSTREAM_", env_file=".env", extra="ignore")

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    topics: TopicSettings = Field(default_factory=TopicSettings)
    postgres: PostgresSettings = Field(default_factory=PostgresSettings)
    api_token: SecretStr | None = None
    """``BRAINSTREAM_API_TOKEN``: the bearer token of every endpoint that returns per-user data
    (dashboard user lookup, worker ``/aggregates/users/{id}``, export API). Required to listen
    beyond loopback; see :mod:`schemas.access`."""
