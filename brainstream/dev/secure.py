"""The secure dev profile (``brainstream dev up --secure``): what a production cluster has.

- TLS on every Kafka listener, from a throw-away CA (:mod:`brainstream.dev.tls`);
- clients authenticate with SCRAM-SHA-512 over TLS (``SASL_SSL``); the nodes use mutual TLS
  between themselves (principal ``User:broker``);
- KRaft's ``StandardAuthorizer``, deny by default, and one principal per process kind, each
  allowed only what its process does (:func:`service_acls`);
- Postgres: one login role per process kind, a member of the migrations' least-privilege
  group role (the dashboard's is read-only), and ``scram-sha-256`` for TCP connections.

Secrets: ``<dev dir>/secure/credentials.json`` and one ``env/<principal>.env`` per principal
(``BRAINSTREAM_KAFKA_*`` and, for the processes that use Postgres, ``BRAINSTREAM_POSTGRES_DSN``),
all ``0600``. They are generated once, never printed or logged: ``dev up --secure`` prints
the env files' paths.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._acl import AclBinding, AclOperation, AclPermissionType
from confluent_kafka.admin._resource import ResourcePatternType, ResourceType
from confluent_kafka.admin._scram import (
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialAlteration,
    UserScramCredentialUpsertion,
)
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from brainstream.dev import tls
from schemas.config import KafkaSettings, TopicSettings

Log = Callable[[str], None]

ADMIN = "admin"
"""The operator's principal (a super user): topics, ACLs, ``dlq replay``."""
PRINCIPALS = ("sdk", "sink", "worker", "eraser", "export", "dashboard")
"""One Kafka principal per process kind, plus the operator's ``admin``."""
PG_ROLES = {
    "sink": "brainstream_sink",
    "worker": "brainstream_worker",
    "eraser": "brainstream_eraser",
    "export": "brainstream_reader",
    "dashboard": "brainstream_reader",
}
"""Login role ``bs_<kind>`` of each process kind that uses Postgres, and the group role whose
grants it inherits (made by the migrations; ``brainstream_reader`` is read-only)."""
SCRAM_ITERATIONS = 8192
GROUPS = {
    "sink": "brainstream-sink",
    "worker": "brainstream-aggregates",
    "export": "brainstream-export",
    "dashboard": "brainstream-",
}
"""Consumer-group prefixes each principal may use (PREFIXED ACLs, as Strimzi grants them):
the default group ids, and any group a test or a second deployment names after them."""


def certificates(root: Path, *, create: bool = False) -> tls.Certificates:
    directory = _secure_dir(root) / "tls"
    return tls.ensure_certificates(directory) if create else tls.Certificates(directory)


def node_client_conf(root: Path) -> dict[str, Any]:
    """librdkafka settings of the nodes' own principal (``User:broker``, mutual TLS): what
    the dev tooling uses on the inter-broker listener to check and provision the cluster."""
    certs = certificates(root)
    return {
        "security.protocol": "SSL",
        "ssl.ca.location": str(certs.ca),
        "ssl.certificate.location": str(certs.broker_cert),
        "ssl.key.location": str(certs.broker_key),
    }


@dataclass(frozen=True)
class Credentials:
    kafka: dict[str, str]
    postgres: dict[str, str]


def credentials(root: Path) -> Credentials:
    """The profile's passwords, generated (``secrets``, 32 bytes) on first use."""
    path = _secure_dir(root) / "credentials.json"
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        doc = {"kafka": {}, "postgres": {}}
    wanted = {"kafka": (ADMIN, *PRINCIPALS), "postgres": tuple(PG_ROLES)}
    missing = {(side, name) for side, names in wanted.items() for name in names} - {
        (side, name) for side, names in doc.items() for name in names
    }
    if missing:  # a new dev dir, or one made before a principal or role was added
        for side, name in missing:
            doc.setdefault(side, {})[name] = secrets.token_urlsafe(32)
        _write_private(path, json.dumps(doc, indent=2) + "\n")
    return Credentials(doc["kafka"], doc["postgres"])


def client_env(root: Path, bootstrap: str, principal: str) -> dict[str, str]:
    """The ``BRAINSTREAM_KAFKA_*`` settings of ``principal`` (password included)."""
    return {
        "BRAINSTREAM_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "BRAINSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "BRAINSTREAM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "BRAINSTREAM_KAFKA_SASL_USERNAME": principal,
        "BRAINSTREAM_KAFKA_SASL_PASSWORD": credentials(root).kafka[principal],
        "BRAINSTREAM_KAFKA_SSL_CA_LOCATION": str(certificates(root).ca),
    }


def kafka_settings(root: Path, bootstrap: str, principal: str) -> KafkaSettings:
    """``principal``'s client settings as the processes read them."""
    env = client_env(root, bootstrap, principal)
    return KafkaSettings.model_validate(
        {k.removeprefix("BRAINSTREAM_KAFKA_").lower(): v for k, v in env.items()}
    )


def postgres_dsn(root: Path, owner_dsn: str, kind: str) -> str:
    """The DSN of process kind ``kind``'s login role (``bs_<kind>``)."""
    return make_conninfo(owner_dsn, user=f"bs_{kind}", password=credentials(root).postgres[kind])


def env_file(root: Path, principal: str) -> Path:
    return _secure_dir(root) / "env" / f"{principal}.env"


def service_acls(
    topics: TopicSettings, groups: dict[str, str] | None = None
) -> dict[str, list[AclBinding]]:
    """Each principal's ACLs (ALLOW, any host) for ``topics``; nothing else is allowed.

    - ``sdk``: write the events topic;
    - ``sink``: read the events topic (its group), write the DLQ and the accepted stream;
    - ``worker``: read the accepted stream (what it aggregates) and the erasures topic, in
      its group (Faust declares no topic: ``topic_allow_declare`` off, no leader topic);
    - ``eraser``: write the erasures topic;
    - ``export``: read the accepted stream (its default source), the events topic
      (``BRAINSTREAM_EXPORT_SOURCE=log``) and the erasures topic, in its group (read-only);
    - ``dashboard``: describe the topics and the groups it watches (lag), read nothing."""
    g = {**GROUPS, **(groups or {})}
    read, write, describe = AclOperation.READ, AclOperation.WRITE, AclOperation.DESCRIBE
    accepted = getattr(topics, "accepted", None)

    def topic(principal: str, name: str | None, *ops: AclOperation) -> list[AclBinding]:
        if name is None:
            return []
        return [
            _binding(principal, ResourceType.TOPIC, name, ResourcePatternType.LITERAL, op)
            for op in ops
        ]

    def group(principal: str, *ops: AclOperation) -> list[AclBinding]:
        prefix = g[principal]
        return [
            _binding(principal, ResourceType.GROUP, prefix, ResourcePatternType.PREFIXED, op)
            for op in ops
        ]

    return {
        "sdk": topic("sdk", topics.events, write, describe),
        "sink": [
            *topic("sink", topics.events, read, describe),
            *group("sink", read),
            *topic("sink", topics.dlq, write, describe),
            *topic("sink", accepted, write, describe),
        ],
        "worker": [
            *topic("worker", accepted, read, describe),
            *topic("worker", topics.erasures, read, describe),
            *group("worker", read),
        ],
        "eraser": topic("eraser", topics.erasures, write, describe),
        "export": [
            *topic("export", accepted, read, describe),
            *topic("export", topics.events, read, describe),
            *topic("export", topics.erasures, read, describe),
            *group("export", read),
        ],
        "dashboard": [
            *topic("dashboard", topics.events, describe),
            *topic("dashboard", topics.dlq, describe),
            *group("dashboard", describe),
        ],
    }


def grant(admin: AdminClient, bindings: Iterable[AclBinding], timeout: float = 30) -> None:
    """Create ``bindings`` (idempotent: an existing ACL is left as it is)."""
    futures = admin.create_acls(list(bindings), request_timeout=timeout)
    for future in futures.values():
        future.result(timeout)


def provision(
    root: Path,
    internal_bootstrap: str,
    client_bootstrap: str,
    owner_dsn: str,
    log: Log,
    topics: TopicSettings | None = None,
) -> None:
    """SCRAM credentials and ACLs in the cluster, login roles in Postgres, env files on disk.
    Idempotent: run by every ``dev up --secure``."""
    creds = credentials(root)
    admin = AdminClient({**node_client_conf(root), "bootstrap.servers": internal_bootstrap})
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
    upserts: list[UserScramCredentialAlteration] = [
        UserScramCredentialUpsertion(name, info, password.encode())
        for name, password in creds.kafka.items()
    ]
    for future in admin.alter_user_scram_credentials(upserts).values():
        future.result(30)
    acls = service_acls(topics or TopicSettings())
    grant(admin, (b for bindings in acls.values() for b in bindings))
    _postgres_roles(owner_dsn, creds)
    for principal in (ADMIN, *PRINCIPALS):
        env = client_env(root, client_bootstrap, principal)
        if principal in PG_ROLES:
            env["BRAINSTREAM_POSTGRES_DSN"] = postgres_dsn(root, owner_dsn, principal)
        # quoted: a key=value DSN has spaces, and `set -a; . file` must read it whole
        lines = "".join(f"{k}={shlex.quote(v)}\n" for k, v in env.items())
        _write_private(env_file(root, principal), lines)
    log(f"secure profile: one env file per principal in {env_file(root, ADMIN).parent}/")


def _postgres_roles(owner_dsn: str, creds: Credentials) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(owner_dsn, autocommit=True) as conn:
        for kind, group in PG_ROLES.items():
            login, group_id = sql.Identifier(f"bs_{kind}"), sql.Identifier(group)
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (group,)).fetchone()
            if exists is None:  # the migrations grant to it; they create it too
                conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(group_id))
            exists = conn.execute(
                "SELECT 1 FROM pg_roles WHERE rolname = %s", (f"bs_{kind}",)
            ).fetchone()
            verb = "ALTER" if exists else "CREATE"
            conn.execute(
                sql.SQL(
                    verb + " ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}"
                ).format(login, sql.Literal(creds.postgres[kind]))
            )
            conn.execute(sql.SQL("GRANT {} TO {}").format(group_id, login))
        dbname = conninfo_to_dict(owner_dsn).get("dbname", "brainstream")
        conn.execute(sql.SQL("REVOKE CREATE ON SCHEMA public FROM PUBLIC"))
        conn.execute(
            sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(str(dbname)))
        )
        for kind in PG_ROLES:
            # the sink stages each batch in a temporary table (sinks.writer)
            privileges = "CONNECT, TEMPORARY" if kind == "sink" else "CONNECT"
            conn.execute(
                sql.SQL("GRANT " + privileges + " ON DATABASE {} TO {}").format(
                    sql.Identifier(str(dbname)), sql.Identifier(f"bs_{kind}")
                )
            )


def _binding(
    principal: str,
    kind: ResourceType,
    name: str,
    pattern: ResourcePatternType,
    operation: AclOperation,
) -> AclBinding:
    return AclBinding(
        kind, name, pattern, f"User:{principal}", "*", operation, AclPermissionType.ALLOW
    )


def _secure_dir(root: Path) -> Path:
    directory = root / "secure"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    return directory


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    staged = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    staged.replace(path)


__all__ = [
    "ADMIN",
    "PG_ROLES",
    "PRINCIPALS",
    "KafkaException",
    "certificates",
    "client_env",
    "credentials",
    "env_file",
    "grant",
    "node_client_conf",
    "postgres_dsn",
    "provision",
    "service_acls",
]
