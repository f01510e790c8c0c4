"""PostgreSQL for the state hosts share (``HITL_DATABASE_URL``): one connection per thread and
process, each unit of work one transaction, retried once on a connection PostgreSQL dropped.

RQ forks a work horse per job: a connection opened before the fork belongs to the parent, so a
child opens its own (the pid is part of the key), and never closes the parent's.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


def is_postgres(url: str | None) -> bool:
    return bool(url) and str(url).startswith(("postgresql://", "postgres://"))


SCHEMA_LOCK = "hitl-schema"  # held while any store creates its tables: hosts start together


def lock_key(name: str) -> int:
    """A stable 63-bit key for ``pg_advisory_xact_lock`` (hashtext is not guaranteed stable)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") >> 1


class Database:
    """``run(work)``: ``work(connection)`` inside one transaction. ``schema``: statements made
    idempotent with IF NOT EXISTS, run once per process before the first unit of work."""

    def __init__(self, url: str, schema: Sequence[str] = ()) -> None:
        if not is_postgres(url):
            raise ValueError("HITL_DATABASE_URL must be a postgresql:// URL")
        self.url = url
        self.schema = list(schema)
        self._local = threading.local()
        self._schema_ready = False

    def run(self, work: Callable[[Any], T]) -> T:
        import psycopg

        for attempt in (1, 2):
            conn = self._connection()
            try:
                with conn.transaction():
                    return work(conn)
            except (psycopg.OperationalError, psycopg.InterfaceError):
                if attempt == 2 or not conn.closed:
                    raise
                log.warning("shared state: the database connection was lost; reconnecting")
                self._local.conn = None
        raise AssertionError("unreachable")

    def lock(self, conn: Any, name: str) -> None:
        """Hold ``name``'s advisory lock until the transaction ends (every host sees it)."""
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(name),))

    def try_lock(self, conn: Any, name: str) -> bool:
        row = conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (lock_key(name),)).fetchone()
        return bool(row[0])

    def _connection(self) -> Any:
        import psycopg

        held = getattr(self._local, "conn", None)
        if held is not None and held[0] == os.getpid() and not held[1].closed:
            return held[1]
        conn = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        self._local.conn = (os.getpid(), conn)
        if not self._schema_ready:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(SCHEMA_LOCK),))
                for statement in self.schema:
                    conn.execute(statement)
            self._schema_ready = True
        return conn
