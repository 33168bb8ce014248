"""A PostgreSQL cluster run from the machine's own binaries (``/usr/lib/postgresql/*/bin``).

Per dev dir, under ``postgres/``: ``data/`` (the cluster, with its unix socket) and
``postgres.log``. Nothing is cached elsewhere; when no binaries exist and we are root on
Debian, the ``postgresql`` package is installed with apt-get.

Postgres refuses to run as root, so as root the cluster belongs to the ``postgres`` OS user
(or a system user ``brainstream`` created on demand) and every parent directory of the dev
dir must be searchable by that user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from brainstream.dev.kafka import process_alive
from schemas.errors import BrainstreamError

ROLE = "brainstream"
PASSWORD = "brainstream"
DATABASE = "brainstream"
_SOCKET_PATH_MAX = 100  # sun_path holds 108 bytes, minus "/.s.PGSQL.NNNNN"


class PostgresServiceError(BrainstreamError, RuntimeError):
    """The local Postgres could not be found, initialised, started or stopped."""


@dataclass(frozen=True)
class PostgresNode:
    home: Path
    port: int

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def log_file(self) -> Path:
        return self.home / "postgres.log"

    @property
    def dsn(self) -> str:
        return f"postgresql://{ROLE}:{PASSWORD}@127.0.0.1:{self.port}/{DATABASE}"


def server_conf(node: PostgresNode) -> str:
    socket_dir = str(node.data_dir) if len(str(node.data_dir)) <= _SOCKET_PATH_MAX else ""
    return (
        "listen_addresses = '127.0.0.1'\n"
        f"port = {node.port}\n"
        f"unix_socket_directories = '{socket_dir}'\n"
        "max_connections = 200\n"
        "shared_buffers = 128MB\n"
        "wal_level = replica\n"
        "timezone = 'UTC'\n"
        "log_timezone = 'UTC'\n"
        "log_line_prefix = '%m [%p] %q%u@%d '\n"
    )


_HBA = "local all all trust\nhost all all 127.0.0.1/32 trust\n"
_HBA_PASSWORDS = "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
"""The secure profile: every TCP connection authenticates (SCRAM); the Unix socket lives in the
data dir, which only the cluster's OS user may enter."""


def require_passwords(node: PostgresNode) -> None:
    """Make TCP connections authenticate with their role's password (``scram-sha-256``) and
    reload the running cluster; idempotent."""
    hba = node.data_dir / "pg_hba.conf"
    if hba.read_text() == _HBA_PASSWORDS:
        return
    _write_owned(hba, _HBA_PASSWORDS, _os_user())
    with psycopg.connect(node.dsn, autocommit=True, connect_timeout=5) as conn:
        conn.execute("SELECT pg_reload_conf()")


def start(node: PostgresNode, log: Callable[[str], None]) -> None:
    """Initialise the cluster once, start it detached and create the database."""
    binaries = find_binaries(log)
    user = _os_user()
    if not (node.data_dir / "PG_VERSION").exists():
        _initdb(node, binaries, user, log)
    _write_owned(node.data_dir / "brainstream.conf", server_conf(node), user)
    _remove_stale_lock(node)
    log(f"starting Postgres on 127.0.0.1:{node.port} (log: {node.log_file})")
    pg_ctl = str(binaries / "pg_ctl")
    _run(
        [pg_ctl, "start", "-D", str(node.data_dir), "-l", str(node.log_file), "-w", "-t", "90"],
        user,
        f"Postgres did not start; see {node.log_file}",
    )
    _ensure_database(node)


def stop(node: PostgresNode, log: Callable[[str], None]) -> None:
    if pid(node) is None:
        return
    pg_ctl = str(find_binaries(log) / "pg_ctl")
    argv = [pg_ctl, "stop", "-D", str(node.data_dir), "-w", "-t", "60", "-m"]
    user = _os_user()
    try:
        _run([*argv, "fast"], user, "pg_ctl stop -m fast failed")
    except PostgresServiceError:
        _run([*argv, "immediate"], user, f"Postgres did not stop; see {node.log_file}")


def pid(node: PostgresNode) -> int | None:
    """The postmaster's pid from ``postmaster.pid`` when that process runs."""
    postmaster = _lock_pid(node)
    return postmaster if postmaster is not None and process_alive(postmaster) else None


def _lock_pid(node: PostgresNode) -> int | None:
    try:
        return int((node.data_dir / "postmaster.pid").read_text().split()[0])
    except (FileNotFoundError, IndexError, ValueError):
        return None


def _remove_stale_lock(node: PostgresNode) -> None:
    """Drop the lock files of a killed postmaster that lingers as a zombie.

    Postgres clears a stale lock itself when its pid is gone, but kill(pid, 0) still finds a
    zombie, and an orphan stays one where PID 1 does not reap (as in some containers).
    """
    postmaster = _lock_pid(node)
    zombie = postmaster is not None and not process_alive(postmaster)
    if zombie and Path(f"/proc/{postmaster}").exists():
        for lock in [node.data_dir / "postmaster.pid", *node.data_dir.glob(".s.PGSQL.*")]:
            lock.unlink()


def answers(node: PostgresNode) -> bool:
    try:
        psycopg.connect(node.dsn, connect_timeout=2).close()
    except psycopg.OperationalError:
        return False
    return True


def find_binaries(log: Callable[[str], None]) -> Path:
    """The newest directory holding initdb and pg_ctl; installs them as root on Debian.

    Raises:
        PostgresServiceError: no binaries are found and they cannot be installed.
    """
    found = _binaries()
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        log("no PostgreSQL binaries found: installing the postgresql package with apt-get")
        for step in (["apt-get", "update"], ["apt-get", "install", "-y", "postgresql"]):
            subprocess.run(step, check=True, capture_output=True, timeout=900)
        found = _binaries()
    if found is None:
        raise PostgresServiceError(
            "PostgreSQL server binaries (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin"
            " or on PATH: install the `postgresql` package (Debian/Ubuntu) or your OS's equivalent"
        )
    return found


def _binaries() -> Path | None:
    def version(path: Path) -> int:
        return int(path.parent.name) if path.parent.name.isdigit() else 0

    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    return next(
        (c for c in candidates if (c / "initdb").is_file() and (c / "pg_ctl").is_file()), None
    )


def _initdb(
    node: PostgresNode, binaries: Path, user: pwd.struct_passwd | None, log: Callable[[str], None]
) -> None:
    log(f"initialising a Postgres cluster in {node.data_dir}")
    node.home.mkdir(parents=True, exist_ok=True)
    if user is not None:
        _check_reachable(node.home, user)
        os.chown(node.home, user.pw_uid, user.pw_gid)
    password_file = node.home / ".pwfile"
    _write_owned(password_file, PASSWORD + "\n", user)
    try:
        _run(
            [
                str(binaries / "initdb"),
                "-D",
                str(node.data_dir),
                "-U",
                ROLE,
                f"--pwfile={password_file}",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-instructions",
            ],
            user,
            "initdb failed",
        )
    finally:
        password_file.unlink(missing_ok=True)
    _write_owned(node.data_dir / "pg_hba.conf", _HBA, user)
    with (node.data_dir / "postgresql.conf").open("a") as conf:
        conf.write("\ninclude_if_exists = 'brainstream.conf'\n")


def _ensure_database(node: PostgresNode) -> None:
    with psycopg.connect(make_conninfo(node.dsn, dbname="postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]).fetchone()
        if exists is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))


def _os_user() -> pwd.struct_passwd | None:
    """The OS user to run Postgres as: None means the current (non-root) user."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "brainstream"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "brainstream"],
        check=True,
        capture_output=True,
    )
    return pwd.getpwnam("brainstream")


def _check_reachable(path: Path, user: pwd.struct_passwd) -> None:
    for parent in reversed(path.parents):
        st = parent.stat()
        if st.st_uid == user.pw_uid:
            allowed = st.st_mode & stat.S_IXUSR
        elif st.st_gid == user.pw_gid:
            allowed = st.st_mode & stat.S_IXGRP
        else:
            allowed = st.st_mode & stat.S_IXOTH
        if not allowed:
            raise PostgresServiceError(
                f"Postgres runs as the OS user {user.pw_name!r}, which cannot enter {parent}: "
                f"`chmod o+x {parent}` or choose a dev dir elsewhere"
            )


def _write_owned(path: Path, text: str, user: pwd.struct_passwd | None) -> None:
    path.write_text(text)
    if user is not None:
        os.chown(path, user.pw_uid, user.pw_gid)


def _run(argv: list[str], user: pwd.struct_passwd | None, failure: str) -> None:
    options: dict[str, Any] = {}
    if user is not None:
        options = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    result = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        cwd="/",
        start_new_session=True,
        **options,
    )
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()[-4000:]
        raise PostgresServiceError(f"{failure} (exit {result.returncode}):\n{output}")
